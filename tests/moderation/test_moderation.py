"""Moderation over real SMTP: held posts, requests to moderators, decisions by reply and by
command line, withdrawal, expiry and reminders, safety holds. Every test runs on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import smtplib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support import DOMAIN, Received, RunningServer, Sink, cli, list_table, make_message

MOD1 = "mod1@ngo.example"
MOD2 = "mod2@ngo.example"
OWNER = "owner@ngo.example"
MEMBER = "member@x.example"
READER = "reader@y.example"
STRANGER = "stranger@z.example"
LIST = f"test@{DOMAIN}"


def start(
    start_server: Any, server: dict[str, Any] | None = None, **settings: Any
) -> RunningServer:
    running: RunningServer = start_server(
        lists=[list_table("test", moderators=[MOD1, MOD2], owners=[OWNER], **settings)],
        server=server or {},
    )
    result = cli(running.config_path, "members", "add", "test", MEMBER, READER)
    assert result.exit_code == 0, result.output
    return running


def notices(sink: Sink, to: str, kind: str) -> list[Received]:
    return [r for r in sink.messages_to(to) if r.message["X-Listserv-Notice"] == kind]


def wait_notice(sink: Sink, to: str, kind: str, count: int = 1) -> Received:
    sink.wait_for(lambda _: len(notices(sink, to, kind)) >= count)
    return notices(sink, to, kind)[count - 1]


def posts_to(sink: Sink, to: str) -> list[str]:
    """Subjects of list posts (not notices) *to* received."""
    return [
        str(r.message["Subject"])
        for r in sink.messages_to(to)
        if r.message["X-Listserv-Notice"] is None
    ]


def wait_post(sink: Sink, to: str, subject: str) -> None:
    sink.wait_for(lambda _: f"[test] {subject}" in posts_to(sink, to))


def post(server: RunningServer, sender: str, subject: str, **kwargs: Any) -> None:
    server.send(sender, LIST, make_message(sender, LIST, subject=subject, **kwargs))


def reply(server: RunningServer, sender: str, request: Received, body: str) -> None:
    """Answer a request the way a mail client does: to its Reply-To, quoting it."""
    to = str(request.message["Reply-To"])
    quoted = "\n".join(
        "> " + line for line in request.message.get_body().get_content().splitlines()
    )
    message = make_message(
        sender, to, subject=f"Re: {request.message['Subject']}", body=f"{body}\n\n{quoted}\n"
    )
    server.send(sender, to, message)


def held(server: RunningServer, *args: str) -> list[dict[str, Any]]:
    result = cli(server.config_path, "held", "list", "--json", "--all", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def control(server: RunningServer, sink: Sink, subject: str = "control") -> None:
    """A post that is distributed: once it arrives, everything sent before was handled."""
    post(server, MOD1, subject)
    wait_post(sink, READER, subject)


# ---- policies ---------------------------------------------------------------------------------

HELD_BY_POLICY = {
    "open": set(),
    "members": {STRANGER},
    "moderated": {MEMBER, STRANGER},
    "announce": {MEMBER, STRANGER},
}


@pytest.mark.parametrize("posting", list(HELD_BY_POLICY))
def test_policy_for_member_nonmember_and_moderator(start_server, sink: Sink, posting: str) -> None:
    server = start(start_server, posting=posting)
    senders = {MEMBER: "from member", STRANGER: "from stranger", MOD1: "from moderator"}
    for sender, subject in senders.items():
        post(server, sender, subject)
    expected_held = HELD_BY_POLICY[posting]
    for sender, subject in senders.items():
        if sender not in expected_held:
            wait_post(sink, READER, subject)
    for sender in expected_held:
        wait_notice(sink, sender, "held_notice")
    if expected_held:
        wait_notice(sink, MOD2, "moderation_request", len(expected_held))
    assert {row["sender"] for row in held(server)} == expected_held
    assert {s for s in posts_to(sink, READER)} == {
        f"[test] {subject}" for sender, subject in senders.items() if sender not in expected_held
    }


def test_moderated_member_flag(start_server, sink: Sink) -> None:
    server = start(start_server)
    result = cli(server.config_path, "members", "set", "test", MEMBER, "--moderated")
    assert result.exit_code == 0
    assert result.output.strip() == f"{MEMBER}: delivery regular, moderated True, enabled"
    post(server, MEMBER, "while moderated")
    wait_notice(sink, MEMBER, "held_notice")
    assert [row["rule"] for row in held(server)] == ["moderated-member"]
    result = cli(server.config_path, "members", "set", "test", MEMBER, "--unmoderated")
    assert result.output.strip() == f"{MEMBER}: delivery regular, moderated False, enabled"
    post(server, MEMBER, "free again")
    wait_post(sink, READER, "free again")
    assert len(held(server)) == 1


def test_nonmember_reject_and_discard(start_server, sink: Sink) -> None:
    server: RunningServer = start_server(
        lists=[
            list_table("test", moderators=[MOD1]),
            list_table("rej", nonmember_action="reject", moderators=[MOD1]),
            list_table("dis", nonmember_action="discard", moderators=[MOD1]),
        ]
    )
    for name in ("rej", "dis", "test"):
        server.send(STRANGER, f"{name}@{DOMAIN}", make_message(STRANGER, f"{name}@{DOMAIN}"))
    wait_notice(sink, STRANGER, "held_notice")
    kinds = sorted(r.message["X-Listserv-Notice"] for r in sink.messages_to(STRANGER))
    assert kinds == ["held_notice", "rejected"]
    wait_notice(sink, MOD1, "moderation_request")


# ---- the request and the notice ----------------------------------------------------------------


def test_request_to_each_moderator_with_the_post_attached(start_server, sink: Sink) -> None:
    server = start(start_server)
    post(server, STRANGER, "Отчёт о семинаре", body="Текст отчёта.\n")
    first = wait_notice(sink, MOD1, "moderation_request")
    second = wait_notice(sink, MOD2, "moderation_request")
    request = first.message
    assert first.mail_from == f"test-bounces@{DOMAIN}"
    assert request["From"] == f"test-owner@{DOMAIN}"
    assert request["Auto-Submitted"] == "auto-replied"
    assert "Отчёт о семинаре" in request["Subject"] and STRANGER in request["Subject"]
    reply_to = str(request["Reply-To"])
    assert reply_to.startswith("test-confirm+") and reply_to.endswith(f"@{DOMAIN}")
    assert reply_to != str(second.message["Reply-To"])  # one token per moderator
    text = request.get_body(("plain",)).get_content()
    assert f"{STRANGER} is not subscribed to the list" in text
    assert "approve always" in text and "reject REASON" in text and "discard" in text
    (attachment,) = list(request.iter_attachments())
    assert attachment.get_content_type() == "message/rfc822"
    original = attachment.get_content()
    assert original["Subject"] == "Отчёт о семинаре"
    assert original["From"] == STRANGER
    assert original.get_content().strip() == "Текст отчёта."
    notice = wait_notice(sink, STRANGER, "held_notice").message
    assert notice["Reply-To"].startswith("test-confirm+")
    assert notice["Reply-To"] not in (reply_to, str(second.message["Reply-To"]))
    assert "withdraw" in notice.get_content()
    assert not sink.messages_to(OWNER)


def test_owner_address_goes_to_owners_not_moderators(start_server, sink: Sink) -> None:
    server = start(start_server)
    server.send(STRANGER, f"test-owner@{DOMAIN}", make_message(STRANGER, f"test-owner@{DOMAIN}"))
    sink.wait_for_recipients({OWNER})
    control(server, sink)
    assert not [r for r in sink.messages_to(MOD2) if r.message["Subject"] == "Hello"]


# ---- decisions by reply -----------------------------------------------------------------------


def test_approve_by_reply(start_server, sink: Sink) -> None:
    server = start(start_server)
    post(server, STRANGER, "Grant opportunity")
    request = wait_notice(sink, MOD1, "moderation_request")
    reply(server, MOD1, request, "Looks fine to me")
    unclear = wait_notice(sink, MOD1, "held_unclear")
    assert "approve" in unclear.message.get_content()
    assert held(server)[0]["status"] == "pending"
    reply(server, MOD1, request, "approve")
    wait_post(sink, READER, "Grant opportunity")
    got = next(r for r in sink.messages_to(MEMBER) if r.message["X-Listserv-Notice"] is None)
    assert got.message["List-Id"] == f'"Test list test" <test.{DOMAIN}>'
    assert got.mail_from == f"test-bounces@{DOMAIN}"
    told = wait_notice(sink, MOD2, "held_decided").message
    assert "approved" in told["Subject"] and MOD1 in told.get_content()
    (row,) = held(server)
    assert row["status"] == "approved"
    assert (row["decided_by"], row["decided_via"]) == (MOD1, "mail")
    assert row["decided_at"] is not None
    assert not notices(sink, MOD1, "held_decided")


def test_reject_with_reason_in_russian(start_server, sink: Sink) -> None:
    server = start(start_server, language="ru")
    post(server, STRANGER, "Купите слона")
    request = wait_notice(sink, MOD2, "moderation_request")
    text = request.message.get_body(("plain",)).get_content()
    assert "одобрить" in text and f"адрес {STRANGER} не подписан на рассылку" in text
    reply(server, MOD2, request, "Отклонить реклама не по теме рассылки")
    rejection = wait_notice(sink, STRANGER, "held_rejected").message
    assert rejection["Subject"] == f"Ваше письмо в {LIST} отклонено"
    assert "реклама не по теме рассылки" in rejection.get_content()
    wait_notice(sink, MOD1, "held_decided")
    (row,) = held(server)
    assert (row["status"], row["decision_reason"]) == ("rejected", "реклама не по теме рассылки")
    control(server, sink)
    assert "[test] Купите слона" not in posts_to(sink, READER)


def test_discard_by_reply_tells_nobody_but_moderators(start_server, sink: Sink) -> None:
    server = start(start_server)
    post(server, STRANGER, "spam")
    request = wait_notice(sink, MOD1, "moderation_request")
    reply(server, MOD1, request, "discard")
    wait_notice(sink, MOD2, "held_decided")
    control(server, sink)
    assert [r.message["X-Listserv-Notice"] for r in sink.messages_to(STRANGER)] == ["held_notice"]
    assert "[test] spam" not in posts_to(sink, READER)
    assert held(server)[0]["status"] == "discarded"


def test_approve_always_lets_a_nonmember_post_freely(start_server, sink: Sink) -> None:
    server = start(start_server)
    post(server, STRANGER, "first")
    reply(server, MOD1, wait_notice(sink, MOD1, "moderation_request"), "approve always")
    wait_post(sink, READER, "first")
    post(server, STRANGER, "second")
    wait_post(sink, READER, "second")
    assert len(held(server)) == 1
    assert len(notices(sink, STRANGER, "held_notice")) == 1


def test_approve_always_clears_a_members_moderation(start_server, sink: Sink) -> None:
    server = start(start_server, language="kk")
    cli(server.config_path, "members", "set", "test", MEMBER, "--moderated")
    post(server, MEMBER, "first")
    reply(server, MOD1, wait_notice(sink, MOD1, "moderation_request"), "Мақұлдау әрқашан")
    wait_post(sink, READER, "first")
    result = cli(server.config_path, "members", "list", "test", "--json")
    assert {m["address"]: m["moderated"] for m in json.loads(result.output)}[MEMBER] is False


def test_poster_withdraws_and_late_moderator_is_told(start_server, sink: Sink) -> None:
    server = start(start_server)
    post(server, STRANGER, "oops")
    notice = wait_notice(sink, STRANGER, "held_notice")
    reply(server, STRANGER, notice, "withdraw")
    ack = wait_notice(sink, STRANGER, "held_acknowledged").message.get_content()
    assert "was withdrawn and will not be sent" in ack
    told = wait_notice(sink, MOD1, "held_decided").message
    assert "withdrawn" in told["Subject"]
    wait_notice(sink, MOD2, "held_decided")
    assert held(server)[0]["status"] == "withdrawn"
    reply(server, MOD2, notices(sink, MOD2, "moderation_request")[0], "approve")
    already = wait_notice(sink, MOD2, "held_already_decided").message
    assert "withdrawn by its sender" in already.get_content()
    control(server, sink)
    assert "[test] oops" not in posts_to(sink, READER)


def test_forged_reused_and_foreign_tokens_change_nothing(start_server, sink: Sink) -> None:
    server = start(start_server)
    post(server, STRANGER, "held one")
    request = wait_notice(sink, MOD1, "moderation_request")
    forged = f"test-confirm+{'a' * 32}@{DOMAIN}"
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:  # a token we never issued
        server.send(STRANGER, forged, make_message(STRANGER, forged, body="approve\n"))
    assert refused.value.recipients[forged][0] == 550
    # The poster's own withdrawal token does not approve.
    reply(server, STRANGER, wait_notice(sink, STRANGER, "held_notice"), "approve")
    wait_notice(sink, STRANGER, "held_unclear")
    control(server, sink, "after forgery")
    assert held(server)[0]["status"] == "pending"
    assert "[test] held one" not in posts_to(sink, READER)
    # The token is the authority: a moderator answering from another mailbox decides.
    reply(server, "mod1.home@ngo.example", request, "approve")
    wait_post(sink, READER, "held one")
    assert held(server)[0]["decided_by"] == f"mod1.home@ngo.example (request sent to {MOD1})"
    assert (
        "was approved"
        in wait_notice(sink, "mod1.home@ngo.example", "held_acknowledged").message.get_content()
    )
    # Used once: the same reply again changes nothing, and is told who decided and how.
    reply(server, MOD1, request, "reject")
    already = wait_notice(sink, MOD1, "held_already_decided").message.get_content()
    assert "was already\r\napproved by mod1.home@ngo.example." in already
    assert f"How:      by replying to the request sent to {MOD1}" in already
    control(server, sink, "after reuse")
    assert held(server)[0]["status"] == "approved"
    assert not notices(sink, STRANGER, "held_rejected")
    assert posts_to(sink, READER).count("[test] held one") == 1


def test_auto_reply_to_a_held_notice_produces_nothing(start_server, sink: Sink) -> None:
    server = start(start_server)
    post(server, STRANGER, "held")
    notice = wait_notice(sink, STRANGER, "held_notice")
    to = str(notice.message["Reply-To"])
    vacation = make_message(
        STRANGER, to, subject="Out of office", body="withdraw\n", Auto_Submitted="auto-replied"
    )
    server.send(STRANGER, to, vacation)
    bounce = make_message("mailer-daemon@z.example", to, subject="Undeliverable", body="withdraw\n")
    server.send("", to, bounce)
    # A bulk sender's post is held without a notice back.
    post(server, "news@z.example", "bulk", Precedence="bulk")
    wait_notice(sink, MOD1, "moderation_request", 2)
    control(server, sink)
    assert held(server)[0]["status"] == "pending"
    assert len(sink.messages_to(STRANGER)) == 1
    assert not sink.messages_to("news@z.example")


# ---- command line -------------------------------------------------------------------------------


def test_cli_decisions(start_server, sink: Sink) -> None:
    server = start(start_server)
    for subject in ("one", "two", "three"):
        post(server, STRANGER, subject)
    wait_notice(sink, MOD1, "moderation_request", 3)
    one, two, three = (row["id"] for row in held(server))
    result = cli(server.config_path, "held", "list", "test")
    assert result.exit_code == 0 and len(result.output.splitlines()) == 3
    assert "nonmember" in result.output and STRANGER in result.output
    result = cli(server.config_path, "held", "show", str(one))
    assert result.exit_code == 0 and "Subject: one" in result.output
    result = cli(server.config_path, "held", "approve", str(one))
    assert (result.exit_code, result.output.strip()) == (0, f"held message {one} approved")
    wait_post(sink, READER, "one")
    result = cli(server.config_path, "held", "reject", str(two), "--reason", "Off topic here")
    assert result.exit_code == 0
    assert "Off topic here" in wait_notice(sink, STRANGER, "held_rejected").message.get_content()
    assert cli(server.config_path, "held", "discard", str(three)).exit_code == 0
    wait_notice(sink, MOD1, "held_decided", 3)
    again = cli(server.config_path, "held", "approve", str(two))
    assert again.exit_code == 1
    assert again.output.strip().startswith(f"listserv: held message {two} was already rejected by ")
    missing = cli(server.config_path, "held", "discard", "999999")
    assert (missing.exit_code, missing.output.strip()) == (1, "listserv: no held message 999999")
    unknown = cli(server.config_path, "held", "list", "nosuch")
    assert (unknown.exit_code, unknown.output.strip()) == (1, "listserv: no list named 'nosuch'")
    assert held(server, "test") == held(server)
    rows = {row["id"]: row for row in held(server)}
    assert [rows[i]["status"] for i in (one, two, three)] == ["approved", "rejected", "discarded"]
    assert all(rows[i]["decided_via"] == "cli" for i in (one, two, three))
    assert rows[two]["decision_reason"] == "Off topic here"
    assert cli(server.config_path, "held", "list", "--json").output.strip() == "[]"


# ---- expiry and reminders ----------------------------------------------------------------------


def at(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%S")


def test_reminders_then_expiry(start_server, sink: Sink) -> None:
    server = start(start_server)
    post(server, STRANGER, "waiting")
    wait_notice(sink, MOD1, "moderation_request")
    soon = cli(server.config_path, "held", "expire", "--at", at(timedelta(hours=2)))
    assert soon.output.strip() == "expired 0 held messages, sent 0 reminders"
    later = cli(server.config_path, "held", "expire", "--at", at(timedelta(days=1, hours=1)))
    assert later.output.strip() == "expired 0 held messages, sent 2 reminders"
    reminder = wait_notice(sink, MOD2, "moderation_reminder").message
    assert "1 held message waiting" in reminder["Subject"]
    assert "waiting" in reminder.get_content() and STRANGER in reminder.get_content()
    again = cli(server.config_path, "held", "expire", "--at", at(timedelta(days=1, hours=2)))
    assert again.output.strip() == "expired 0 held messages, sent 0 reminders"
    gone = cli(server.config_path, "held", "expire", "--at", at(timedelta(days=15)))
    assert gone.output.strip() == "expired 1 held messages, sent 0 reminders"
    expiry = wait_notice(sink, STRANGER, "held_expired").message
    assert "14 days" in expiry.get_content()
    (row,) = held(server)
    assert (row["status"], row["decided_via"]) == ("expired", "expiry")
    reply(server, MOD1, notices(sink, MOD1, "moderation_request")[0], "approve")
    already = wait_notice(sink, MOD1, "held_already_decided").message.get_content()
    assert "was already\r\ndropped because nobody decided in time." in already


def test_serve_expires_on_its_schedule(start_server, sink: Sink) -> None:
    server = start(start_server, hold_expiry_days=0.00001, server={"moderation_interval": 0.2})
    post(server, STRANGER, "short-lived")
    wait_notice(sink, STRANGER, "held_expired")
    assert held(server)[0]["status"] == "expired"


# ---- safety holds -------------------------------------------------------------------------------


def test_safety_holds(start_server, sink: Sink) -> None:
    server = start(
        start_server,
        max_post_size=4000,
        max_post_recipients=3,
        max_posts_per_sender_per_day=2,
        max_posts_per_day=8,
    )
    cli(server.config_path, "members", "add", "test", "third@w.example")
    post(server, MEMBER, "big", body="x" * 5000 + "\n")
    post(server, MEMBER, "many", Cc="a@q.example, b@q.example, c@q.example")
    post(server, MEMBER, "Re: unsubscribe")
    post(server, MOD1, "Report", body="Отписаться\n")
    for subject in ("r1", "r2", "r3", "r4"):
        post(server, READER, subject)
    post(server, "third@w.example", "t1")
    sink.wait_for(
        lambda _: any(
            "t1" in r.message["Subject"] for r in notices(sink, MOD2, "moderation_request")
        )
    )
    rules = {row["subject"]: row["rule"] for row in held(server)}
    assert rules == {
        "big": "size",
        "many": "recipients",
        "Re: unsubscribe": "command-like",
        "Report": "command-like",
        "r3": "sender-daily-cap",
        "r4": "sender-daily-cap",
        "t1": "list-daily-cap",
    }
    assert {"[test] r1", "[test] r2"} <= set(posts_to(sink, MEMBER))
    # A runaway sender: the moderators are asked about the first capped post only.
    requests = [r.message["Subject"] for r in notices(sink, MOD2, "moderation_request")]
    assert len(requests) == 6 and not any(s.endswith(": r4") for s in requests)


# ---- what moderators and posters read ------------------------------------------------------------


def test_every_decision_by_reply_is_acknowledged_in_russian(start_server, sink: Sink) -> None:
    server = start(start_server, language="ru", digest={"timezone": "Asia/Almaty"})
    post(server, STRANGER, "Семинар")
    request = wait_notice(sink, MOD1, "moderation_request")
    reply(server, MOD1, request, "одобрить")
    wait_post(sink, READER, "Семинар")
    ack = wait_notice(sink, MOD1, "held_acknowledged").message
    body = ack.get_content()
    assert "Ваше решение принято: письмо № 1 в рассылку" in body
    assert "одобрено.\r\nОно разослано подписчикам." in body
    told = wait_notice(sink, MOD2, "held_decided").message.get_content()
    assert f"одобрено модератором {MOD1}." in told
    assert "(часовой пояс: Алматы)" in told and "UTC" not in told
    assert not notices(sink, MOD1, "held_decided")

    # The same token again: answered with who decided, when and how; nothing changes.
    reply(server, MOD1, request, "отклонить поздно")
    already = wait_notice(sink, MOD1, "held_already_decided").message
    text = already.get_content()
    assert already["Subject"] == "Письмо уже обработано: Семинар"
    assert f"уже обработано:\r\nодобрено модератором {MOD1}." in text
    assert "Когда:  " in text and "(часовой пояс: Алматы)" in text
    assert "Как:    ответом на запрос по почте" in text
    assert held(server)[0]["status"] == "approved"
    assert not notices(sink, STRANGER, "held_rejected")


def test_command_line_decisions_reach_moderators_as_a_sentence(start_server, sink: Sink) -> None:
    server = start(start_server, language="ru")
    post(server, STRANGER, "Реклама")
    wait_notice(sink, MOD1, "moderation_request")
    (row,) = held(server)
    result = cli(server.config_path, "held", "reject", str(row["id"]), "--reason", "Спам")
    assert result.exit_code == 0
    told = wait_notice(sink, MOD1, "held_decided").message
    assert told["Subject"] == f"test: письмо № {row['id']} — отклонено"
    text = told.get_content()
    assert "отклонено администратором сервера (пользователь " in text
    assert "Как:      командой listserv на сервере" in text
    assert "Причина:  Спам" in text
    assert "command line" not in text and "root (" not in text


def test_a_member_who_posts_unsubscribe_is_told_how_to_leave(
    start_server, sink: Sink, tmp_path
) -> None:
    server = start_server(
        lists=[list_table("test", language="ru", moderators=[MOD1])],
        web={
            "listen": "127.0.0.1:0",
            "base_url": "https://lists.example.org",
            "secret_file": str(tmp_path / "keys" / "web.secret"),
        },
    )
    assert cli(server.config_path, "members", "add", "test", "--no-welcome", MEMBER).exit_code == 0
    post(server, MEMBER, "отписаться")
    notice = wait_notice(sink, MEMBER, "held_notice").message
    text = notice.get_content()
    assert "Если вы хотели отписаться, писать в рассылку для этого не нужно." in text
    assert f"любое письмо на адрес test-leave@{DOMAIN}" in text
    assert "Или откройте ссылку: https://lists.example.org/u/" in text
    assert "Ничего делать не нужно" not in text
