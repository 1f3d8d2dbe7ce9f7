"""The posting rule chain on plain messages: which rule decides, and what."""

from __future__ import annotations

import pytest

from listserv.config import ListConfig
from listserv.mail.codec import parse
from listserv.posting.rules import Post, decide
from listserv.store.lists import MailList

DOMAIN = "lists.example.org"


def post(posting: str = "members", nonmember_action: str = "hold", **sender: bool) -> Post:
    mlist = MailList(
        1, ListConfig(name="env", posting=posting, nonmember_action=nonmember_action), DOMAIN
    )
    message = parse(b"From: a@x.example\r\nSubject: hi\r\n\r\nbody\r\n")
    return Post(mlist=mlist, message=message, sender="a@x.example", **sender)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (post("open"), ("accept", "default")),
        (post("open", is_member=True), ("accept", "default")),
        (post("members", is_member=True), ("accept", "default")),
        (post("members", "hold"), ("hold", "nonmember")),
        (post("members", "reject"), ("reject", "nonmember")),
        (post("members", "discard"), ("discard", "nonmember")),
        (post("members", is_member=True, member_moderated=True), ("hold", "moderated-member")),
        (post("members", is_moderator=True), ("accept", "default")),
        (post("moderated", is_member=True), ("hold", "moderated-list")),
        (post("moderated", is_owner=True), ("accept", "default")),
        (post("announce", is_moderator=True), ("accept", "default")),
        (post("announce", is_owner=True), ("accept", "default")),
        (post("announce", is_member=True), ("hold", "announce-only")),
        (post("announce", "reject"), ("reject", "announce-only")),
        (post("announce", "discard"), ("discard", "announce-only")),
    ],
)
def test_decisions(case: Post, expected: tuple[str, str]) -> None:
    decision = decide(case)
    assert (decision.action, decision.rule) == expected
    assert decision.reason


def test_loop_beats_everything() -> None:
    looped = post("open", is_owner=True)
    looped.message["X-BeenThere"] = f"env@{DOMAIN}"
    assert (decide(looped).action, decide(looped).rule) == ("discard", "loop")
