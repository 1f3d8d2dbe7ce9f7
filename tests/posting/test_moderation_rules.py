"""The posting rules, one by one, on plain messages: policy and safety holds."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import pytest

from listserv.config import ListConfig
from listserv.posting.rules import (
    Post,
    command_like,
    decide,
    is_command_like,
    list_daily_cap,
    oversized,
    sender_daily_cap,
    too_many_recipients,
)
from listserv.store.lists import MailList

DOMAIN = "lists.example.org"


def mlist(**settings: Any) -> MailList:
    return MailList(1, ListConfig(name="test", **settings), DOMAIN)


def message(subject: str = "Hello", body: str = "Hello, list.\n", **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "alice@example.com"
    msg["To"] = f"test@{DOMAIN}"
    msg["Subject"] = subject
    for name, value in headers.items():
        msg[name] = value
    msg.set_content(body)
    return msg


def post(
    settings: dict[str, Any] | None = None, msg: EmailMessage | None = None, **facts: Any
) -> Post:
    return Post(mlist(**(settings or {})), msg or message(), "alice@example.com", **facts)


MEMBER = {"is_member": True}
NONMEMBER: dict[str, Any] = {}
MODERATOR = {"is_moderator": True}
OWNER = {"is_owner": True}
ACCEPTED = {"is_accepted": True}


@pytest.mark.parametrize(
    ("posting", "sender", "expected"),
    [
        ("open", MEMBER, "accept"),
        ("open", NONMEMBER, "accept"),
        ("open", MODERATOR, "accept"),
        ("members", MEMBER, "accept"),
        ("members", NONMEMBER, "hold"),
        ("members", MODERATOR, "accept"),
        ("members", ACCEPTED, "accept"),
        ("moderated", MEMBER, "hold"),
        ("moderated", NONMEMBER, "hold"),
        ("moderated", MODERATOR, "accept"),
        ("moderated", OWNER, "accept"),
        ("moderated", ACCEPTED, "accept"),
        ("announce", MEMBER, "hold"),
        ("announce", NONMEMBER, "hold"),
        ("announce", MODERATOR, "accept"),
        ("announce", OWNER, "accept"),
    ],
)
def test_posting_policy(posting: str, sender: dict[str, Any], expected: str) -> None:
    assert decide(post({"posting": posting}, **sender)).action == expected


@pytest.mark.parametrize("action", ["hold", "reject", "discard"])
def test_nonmember_action_applies_before_safety_holds(action: str) -> None:
    big = post({"nonmember_action": action, "max_post_size": 10}, size=1000)
    decision = decide(big)
    assert (decision.action, decision.rule) == (action, "nonmember")


def test_moderated_member_is_held_unless_trusted() -> None:
    assert decide(post(is_member=True, member_moderated=True)).rule == "moderated-member"
    trusted = post(is_member=True, member_moderated=True, is_moderator=True)
    assert decide(trusted).action == "accept"


def test_oversized() -> None:
    assert oversized(post({"max_post_size": 100}, size=101)).rule == "size"
    assert oversized(post({"max_post_size": 100}, size=100)) is None
    assert oversized(post({"max_post_size": 0}, size=10**9)) is None


def test_oversized_holds_moderators_too() -> None:
    decision = decide(post({"max_post_size": 100}, size=500, is_moderator=True))
    assert (decision.action, decision.rule) == ("hold", "size")


def test_too_many_recipients_counts_to_and_cc() -> None:
    msg = message(Cc="a@x.example, b@x.example, c@x.example")
    assert too_many_recipients(post({"max_post_recipients": 4}, msg)) is None
    decision = too_many_recipients(post({"max_post_recipients": 3}, msg))
    assert decision is not None
    assert decision.reason == "the message has more than 3 recipients"
    assert too_many_recipients(post({"max_post_recipients": 0}, msg)) is None


@pytest.mark.parametrize(
    "line",
    [
        "unsubscribe",
        "Unsubscribe me please",
        "SUBSCRIBE",
        "remove me",
        "Отписаться",
        "отпишите меня",
        "мені алып тастаңыз",
        "set delivery digest",
    ],
)
def test_command_like_lines(line: str) -> None:
    assert is_command_like(line)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "How to unsubscribe from the old list, a short guide",
        "Help",
        "Newsletter",
        "Subscribe to our journal on climate policy now",
    ],
)
def test_ordinary_lines(line: str) -> None:
    assert not is_command_like(line)


def test_command_like_subject_with_reply_marker_and_prefix() -> None:
    assert command_like(post(msg=message(subject="Re: [test] unsubscribe"))) is not None


def test_command_like_first_body_lines_but_not_quotes() -> None:
    assert command_like(post(msg=message(body="\nотписаться\n"))) is not None
    quoted = message(subject="Re: news", body="Thanks!\n\n> unsubscribe\n")
    assert command_like(post(msg=quoted)) is None
    late = message(body="a\nb\nc\nd\ne\nf\nunsubscribe\n")
    assert command_like(post(msg=late)) is None


def test_command_like_can_be_turned_off() -> None:
    assert command_like(post({"hold_command_like": False}, message(subject="unsubscribe"))) is None


def test_daily_caps() -> None:
    settings = {"max_posts_per_sender_per_day": 2, "max_posts_per_day": 5}
    assert sender_daily_cap(post(settings, posts_today_by_sender=1)) is None
    assert sender_daily_cap(post(settings, posts_today_by_sender=2)).rule == "sender-daily-cap"
    assert list_daily_cap(post(settings, posts_today_to_list=4)) is None
    assert list_daily_cap(post(settings, posts_today_to_list=5)).rule == "list-daily-cap"
    assert (
        sender_daily_cap(post({"max_posts_per_sender_per_day": 0}, posts_today_by_sender=99))
        is None
    )
