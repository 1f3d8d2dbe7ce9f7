"""Email commands and the subscription lifecycle, over real SMTP against the running server."""

from __future__ import annotations

import json
from datetime import timedelta
from email.header import decode_header, make_header
from pathlib import Path

from sqlalchemy import update
from support import DOMAIN, Received, RunningServer, Sink, cli, list_table, make_message, token_of

from listserv.store.db import transaction
from listserv.store.models import Token, utcnow

REQUEST = f"test-request@{DOMAIN}"
ALICE = "alice@example.com"


def send_command(
    server: RunningServer,
    body: str,
    *,
    sender: str = ALICE,
    to: str = REQUEST,
    subject: str = "",
    envelope: str | None = None,
    **headers: str,
) -> None:
    message = make_message(sender, to, subject, body, **headers)
    server.send(sender if envelope is None else envelope, to, message)


def notices(sink: Sink, address: str, kind: str) -> list[Received]:
    return [m for m in sink.messages_to(address) if m.message["X-Listserv-Notice"] == kind]


def wait_notice(sink: Sink, address: str, kind: str, count: int = 1) -> Received:
    sink.wait_for(lambda _: len(notices(sink, address, kind)) >= count)
    return notices(sink, address, kind)[count - 1]


def text(received: Received) -> str:
    return received.message.get_content()


def members(server: RunningServer, name: str = "test") -> dict[str, str]:
    result = cli(server.config_path, "members", "list", name, "--json")
    assert result.exit_code == 0, result.output
    return {m["address"]: m["delivery"] for m in json.loads(result.output)}


def pending(server: RunningServer, name: str = "test") -> list[dict]:
    result = cli(server.config_path, "members", "list", name, "--pending", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def sentinel(server: RunningServer, sink: Sink, address: str = "sentinel@example.net") -> None:
    """A later command that does produce a reply: once it arrives, the mail before it has
    been handled; once nothing is left to send, the replies to it have arrived too."""
    count = len(notices(sink, address, "command-reply"))
    send_command(server, "help", sender=address)
    wait_notice(sink, address, "command-reply", count + 1)
    server.wait_until_delivered()


def test_help_reply_lists_the_commands_with_the_list_headers(start_server, sink: Sink) -> None:
    server = start_server()
    send_command(server, "help\nthanks!\n", subject="Re: question")
    reply = wait_notice(sink, ALICE, "command-reply")
    message = reply.message
    assert reply.rcpt_tos == [ALICE]
    assert reply.mail_from == f"test-bounces@{DOMAIN}"
    assert message["From"] == REQUEST
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["List-Id"] == f'"Test list test" <test.{DOMAIN}>'
    assert message["In-Reply-To"]
    body = text(reply)
    assert "> help" in body
    assert "subscribe [digest|plain]" in body
    assert "set delivery MODE" in body
    assert "1 line(s) that were not commands were ignored" in body


def test_subscribe_confirmed_by_replying_makes_a_member_and_welcomes(
    start_server, sink: Sink
) -> None:
    server = start_server()
    send_command(server, "subscribe\n-- \nAlice\nsubscribe digest\n")
    confirmation = wait_notice(sink, ALICE, "confirm")
    assert "asked to subscribe alice@example.com to the list" in text(confirmation)
    token = token_of(confirmation)
    confirm_address = f"test-confirm+{token}@{DOMAIN}"
    assert confirmation.message["Reply-To"] == confirm_address
    assert confirmation.message["Auto-Submitted"] == "auto-replied"
    assert f"confirm {token}" in text(confirmation)
    assert members(server) == {}
    assert [(p["address"], p["action"]) for p in pending(server)] == [(ALICE, "subscribe")]

    send_command(server, "> quoted text", to=confirm_address, subject=f"Re: confirm {token}")
    welcome = wait_notice(sink, ALICE, "welcome")
    assert members(server) == {ALICE: "regular"}
    assert pending(server) == []
    body = text(welcome)
    assert f"test-leave@{DOMAIN}" in body
    assert "set delivery digest" in body

    # The token is single-use: replying again, or sending it as a command, changes nothing.
    send_command(server, "", to=confirm_address, subject=f"Re: confirm {token}")
    send_command(server, f"confirm {token}")
    reply = wait_notice(sink, ALICE, "command-reply")
    assert "unknown, already used or expired" in text(reply)
    # The confirmation request was the only answer to the subscribe command.
    assert len(notices(sink, ALICE, "command-reply")) == 1
    assert len(notices(sink, ALICE, "welcome")) == 1
    assert members(server) == {ALICE: "regular"}


def test_confirm_command_subscribes_with_the_requested_delivery(start_server, sink: Sink) -> None:
    server = start_server()
    send_command(server, "", subject="subscribe digest")
    token = token_of(wait_notice(sink, ALICE, "confirm"))
    send_command(server, f"confirm {token}")
    reply = wait_notice(sink, ALICE, "command-reply")
    assert "Confirmed: alice@example.com is now subscribed" in text(reply)
    welcome = wait_notice(sink, ALICE, "welcome")
    assert "Delivery: digest — several messages in one mail" in text(welcome)
    assert members(server) == {ALICE: "digest"}


def test_join_and_leave_addresses_ask_for_confirmation(start_server, sink: Sink) -> None:
    server = start_server()
    send_command(server, "please add me", to=f"test-join@{DOMAIN}")
    token = token_of(wait_notice(sink, ALICE, "confirm"))
    send_command(server, "", to=f"test-confirm+{token}@{DOMAIN}", subject=f"Re: confirm {token}")
    wait_notice(sink, ALICE, "welcome")
    assert members(server) == {ALICE: "regular"}

    send_command(server, "", to=f"test-unsubscribe@{DOMAIN}")
    confirmation = wait_notice(sink, ALICE, "confirm", 2)
    assert "to unsubscribe alice@example.com" in text(confirmation)
    assert members(server) == {ALICE: "regular"}
    token = token_of(confirmation)
    send_command(server, "", to=f"test-confirm+{token}@{DOMAIN}", subject=f"Re: confirm {token}")
    goodbye = wait_notice(sink, ALICE, "goodbye")
    assert f"test-join@{DOMAIN}" in text(goodbye)
    assert members(server) == {}
    # The join/leave addresses answer with the confirmation request alone.
    assert notices(sink, ALICE, "command-reply") == []

    send_command(server, "", to=f"test-leave@{DOMAIN}")
    reply = wait_notice(sink, ALICE, "command-reply")
    assert "alice@example.com is not subscribed" in text(reply)


def test_unsubscribe_and_set_delivery_by_command_are_confirmed(start_server, sink: Sink) -> None:
    server = start_server()
    assert cli(server.config_path, "members", "add", "test", "--no-welcome", ALICE).exit_code == 0
    send_command(server, "set delivery digest\nset delivery often\n")
    reply = wait_notice(sink, ALICE, "command-reply")
    assert "Usage: set delivery regular|digest|plain|nomail" in text(reply)
    token = token_of(wait_notice(sink, ALICE, "confirm"))
    assert members(server) == {ALICE: "regular"}
    send_command(server, "", to=f"test-confirm+{token}@{DOMAIN}", subject=f"Re: confirm {token}")
    changed = wait_notice(sink, ALICE, "delivery")
    assert "Now: digest — several messages in one mail" in text(changed)
    assert members(server) == {ALICE: "digest"}

    send_command(server, "UNSUBSCRIBE")
    token = token_of(wait_notice(sink, ALICE, "confirm", 2))
    send_command(server, f"confirm {token}")
    reply = wait_notice(sink, ALICE, "command-reply", 2)
    assert "now unsubscribed" in text(reply)
    wait_notice(sink, ALICE, "goodbye")
    assert members(server) == {}


def expire_tokens(server: RunningServer) -> None:
    with transaction(server.app.sessions) as session:
        session.execute(update(Token).values(expires_at=utcnow() - timedelta(seconds=1)))


def test_wrong_foreign_and_expired_tokens_change_nothing(start_server, sink: Sink) -> None:
    server = start_server()
    send_command(server, "subscribe")
    token = token_of(wait_notice(sink, ALICE, "confirm"))

    send_command(server, "confirm " + "A" * 32)
    assert "unknown, already used or expired" in text(wait_notice(sink, ALICE, "command-reply"))

    # Someone else holding the token cannot confirm it, by command or by reply.
    mallory = "mallory@example.net"
    send_command(server, f"confirm {token}", sender=mallory)
    assert "issued to another address" in text(wait_notice(sink, mallory, "command-reply"))
    send_command(server, "", sender=mallory, to=f"test-confirm+{token}@{DOMAIN}")
    assert members(server) == {}
    assert len(pending(server)) == 1

    expire_tokens(server)
    assert pending(server) == []
    send_command(server, "", to=f"test-confirm+{token}@{DOMAIN}", subject=f"Re: confirm {token}")
    send_command(server, f"confirm {token}")
    assert "unknown, already used or expired" in text(wait_notice(sink, ALICE, "command-reply", 2))
    assert members(server) == {}
    assert notices(sink, ALICE, "welcome") == []


def test_russian_list_answers_in_russian(start_server, sink: Sink) -> None:
    server = start_server(lists=[list_table("test", language="ru", title="Экология")])
    send_command(server, "Помощь")
    reply = wait_notice(sink, ALICE, "command-reply")
    raw_subject = reply.raw.split(b"\r\n\r\n")[0].decode("ascii")
    assert "Subject: =?utf-8?" in raw_subject
    assert str(reply.message["Subject"]) == f"Результаты ваших команд для {REQUEST}"
    assert reply.message.get_content_charset() == "utf-8"
    assert reply.message["Content-Language"] == "ru"
    assert "Отправляйте команды на адрес" in text(reply)

    send_command(server, "подписаться")
    confirmation = wait_notice(sink, ALICE, "confirm")
    assert "подписать адрес alice@example.com на рассылку" in text(confirmation)
    token = token_of(confirmation)
    send_command(server, "", to=f"test-confirm+{token}@{DOMAIN}", subject=f"Re: confirm {token}")
    welcome = wait_notice(sink, ALICE, "welcome")
    assert str(make_header(decode_header(welcome.message["Subject"]))) == (
        "Добро пожаловать в рассылку «Экология»"
    )


def test_kazakh_list_answers_in_kazakh(start_server, sink: Sink) -> None:
    server = start_server(lists=[list_table("test", language="kk", region="Қазақстан")])
    send_command(server, "info")
    reply = wait_notice(sink, ALICE, "command-reply")
    assert str(reply.message["Subject"]).endswith("пәрмендеріңіздің нәтижелері")
    body = text(reply)
    assert "Өңір:                Қазақстан" in body
    assert "мекенжайыңыз бұл таратылымға жазылмаған" in body


def test_legacy_cyrillic_charsets_are_understood(start_server, sink: Sink) -> None:
    server = start_server(lists=[list_table("test", language="ru")])
    for sender, charset, command, kind in (
        (ALICE, "windows-1251", "подписаться", "confirm"),
        ("bob@example.com", "koi8-r", "помощь", "command-reply"),
    ):
        raw = (
            f"From: {sender}\r\nTo: {REQUEST}\r\nSubject: hi\r\nMessage-ID: <{charset}@x>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
        ).encode() + f"{command}\r\n".encode(charset)
        server.send(sender, REQUEST, raw)
        wait_notice(sink, sender, kind)
    assert "Отправляйте команды" in text(wait_notice(sink, "bob@example.com", "command-reply"))


def test_html_only_command_mail_is_read(start_server, sink: Sink) -> None:
    server = start_server()
    message = make_message(ALICE, REQUEST, "", "x")
    message.set_content("<html><body><p>info</p><blockquote>subscribe</blockquote>", "html")
    server.send(ALICE, REQUEST, message)
    body = text(wait_notice(sink, ALICE, "command-reply"))
    assert "> info" in body and "> subscribe" not in body


def test_robots_and_bounces_get_no_answer(start_server, sink: Sink) -> None:
    server = start_server()
    robots = {
        "vacation@example.com": {"Auto_Submitted": "auto-replied"},
        "bulk@example.com": {"Precedence": "bulk"},
        "list@example.com": {"List_Id": "<other.example.com>"},
        "echo@example.com": {"X_Listserv_Notice": "command-reply"},
        # Autoresponders that do not use Auto-Submitted.
        "away@example.com": {"X_Autoreply": "yes"},
        "holiday@example.com": {"X_Autorespond": "Out of office"},
        "outlook@example.com": {"X_Auto_Response_Suppress": "All"},
    }
    for sender, headers in robots.items():
        send_command(server, "help\nsubscribe", sender=sender, **headers)
        send_command(server, "", sender=sender, to=f"test-join@{DOMAIN}", **headers)
    send_command(server, "help", sender="MAILER-DAEMON@example.com")
    send_command(server, "help", sender="someone@example.com", envelope="")
    sentinel(server, sink)
    answered = {r for m in sink.received for r in m.rcpt_tos}
    assert answered == {"sentinel@example.net"}


def test_replies_to_one_address_are_capped_per_day(start_server, sink: Sink) -> None:
    server = start_server(server={"max_autoreplies_per_day": 2})
    for _ in range(3):
        send_command(server, "help")
    send_command(server, "subscribe")
    sentinel(server, sink)
    assert len(sink.messages_to(ALICE)) == 2


def test_a_third_address_is_never_mailed(start_server, sink: Sink) -> None:
    server = start_server()
    victim = "victim@example.org"
    send_command(server, f"subscribe {victim}\nunsubscribe address={victim}")
    body = text(wait_notice(sink, ALICE, "command-reply"))
    assert body.count("Refused: you can only subscribe or unsubscribe the address") == 2
    sentinel(server, sink)
    assert sink.messages_to(victim) == []
    assert notices(sink, ALICE, "confirm") == []
    assert pending(server) == []


def test_lists_and_info_never_disclose_members(start_server, sink: Sink) -> None:
    server = start_server(
        lists=[
            list_table("test", region="Kazakhstan", topic="Environment", description="Air."),
            list_table("water-kz", region="Kazakhstan", topic="Water", title="Water KZ"),
            list_table("gender-kg", region="Kyrgyzstan", topic="Gender", title="Gender KG"),
            list_table("secret", advertised=False),
        ]
    )
    assert cli(server.config_path, "members", "add", "test", "--no-welcome", ALICE).exit_code == 0
    assert cli(server.config_path, "members", "add", "test", "bob@example.com").exit_code == 0
    send_command(server, "lists\ninfo")
    body = text(wait_notice(sink, ALICE, "command-reply"))
    lists_part = body[body.index("> lists") : body.index("> info")]
    assert lists_part.index("Kazakhstan") < lists_part.index(f"water-kz@{DOMAIN}")
    assert lists_part.index(f"water-kz@{DOMAIN}") < lists_part.index("Kyrgyzstan")
    assert "Water KZ\r\n      Topic: Water" in lists_part
    assert "Gender KG\r\n      Topic: Gender" in lists_part
    assert "secret" not in lists_part
    info_part = body[body.index("> info") :]
    assert "Air." in info_part
    assert "alice@example.com is subscribed to this list.\r\nDelivery: every message" in info_part
    assert "bob@example.com" not in body


def test_operators_override_templates(start_server, sink: Sink, tmp_path: Path) -> None:
    (tmp_path / "custom" / "en").mkdir(parents=True)
    (tmp_path / "custom" / "en" / "command-reply.txt").write_text(
        "Subject: Our robot answers\n\n{% for r in results %}{{ r.key }}\n{% endfor %}",
        encoding="utf-8",
    )
    server = start_server(server={"template_dir": "custom"})
    send_command(server, "help\nsubscribe")
    reply = wait_notice(sink, ALICE, "command-reply")
    assert reply.message["Subject"] == "Our robot answers"
    assert text(reply).splitlines() == ["help", "confirmation-sent"]
    # Templates not overridden still come from the built-in set.
    assert "To confirm, simply reply" in text(wait_notice(sink, ALICE, "confirm"))


def test_owner_address_forwards_to_the_owners(start_server, sink: Sink) -> None:
    owners = ["owner1@ngo.example", "owner2@ngo.example"]
    server = start_server(lists=[list_table("test", owners=owners)])
    send_command(server, "Who runs this list?", to=f"test-owner@{DOMAIN}", subject="Question")
    got = sink.wait_for_recipients(set(owners))
    assert got[0].mail_from == f"test-bounces@{DOMAIN}"
    assert sorted(got[0].rcpt_tos) == owners
    assert got[0].message["Subject"] == "Question"
    assert got[0].message["From"] == ALICE
    assert "Who runs this list?" in text(got[0])
    assert ALICE not in {r for m in sink.received for r in m.rcpt_tos}


def test_cli_welcomes_added_members_and_shows_pending_and_counts(start_server, sink: Sink) -> None:
    server = start_server()
    path = server.config_path
    assert cli(path, "members", "add", "test", "--no-welcome", "quiet@example.com").exit_code == 0
    assert cli(path, "members", "add", "test", "--digest", "new@example.com").exit_code == 0
    assert "Delivery: digest — several" in text(wait_notice(sink, "new@example.com", "welcome"))
    send_command(server, "subscribe plain")
    wait_notice(sink, ALICE, "confirm")
    sentinel(server, sink)
    assert sink.messages_to("quiet@example.com") == []

    result = cli(path, "members", "list", "test", "--pending")
    assert result.exit_code == 0
    assert result.output.startswith(f"{ALICE}  subscribe  expires ")
    assert [(p["address"], p["delivery"]) for p in pending(server)] == [(ALICE, "plain")]
    shown = json.loads(cli(path, "lists", "show", "test", "--json").output)
    assert shown["members"] == 2
    assert shown["members_by_delivery"] == {
        "regular": 1,
        "digest": 1,
        "plain": 0,
        "html": 0,
        "nomail": 0,
    }
    assert shown["pending_confirmations"] == 1
    text_output = cli(path, "lists", "show", "test").output
    assert "pending_confirmations: 1" in text_output


def test_delivery_change_by_mail_is_one_confirmation_that_says_why(
    start_server, sink: Sink
) -> None:
    server = start_server(lists=[list_table("test", language="ru", title="Экология")])
    assert cli(server.config_path, "members", "add", "test", "--no-welcome", ALICE).exit_code == 0
    send_command(server, "режим дайджест")
    confirmation = wait_notice(sink, ALICE, "confirm")
    body = text(confirmation)
    assert "Новый режим получения: дайджест — несколько писем в одном" in body
    assert "чтобы никто не мог от вашего имени\r\nотключить вам рассылку" in body
    assert members(server) == {ALICE: "regular"}

    token = token_of(confirmation)
    send_command(server, "", to=f"test-confirm+{token}@{DOMAIN}", subject=f"Re: {token}")
    changed = wait_notice(sink, ALICE, "delivery")
    assert "Теперь: дайджест — несколько писем в одном, с вложениями." in text(changed)
    assert members(server) == {ALICE: "digest"}
    sentinel(server, sink)
    # The command, its confirmation and the change: two mails, no reply besides them.
    assert sorted(m.message["X-Listserv-Notice"] for m in sink.messages_to(ALICE)) == [
        "confirm",
        "delivery",
    ]


def test_two_subscribe_commands_in_one_mail_make_one_request(start_server, sink: Sink) -> None:
    server = start_server(lists=[list_table("test", language="ru")])
    send_command(server, "подписаться digest", subject="Подписка")
    confirmation = wait_notice(sink, ALICE, "confirm")
    assert "Режим получения: дайджест" in text(confirmation)
    assert [(p["address"], p["delivery"]) for p in pending(server)] == [(ALICE, "digest")]
    shown = json.loads(cli(server.config_path, "lists", "show", "test", "--json").output)
    assert shown["pending_confirmations"] == 1

    # A later request replaces the earlier one: its token no longer works.
    send_command(server, "подписаться текст")
    second = wait_notice(sink, ALICE, "confirm", 2)
    assert [(p["address"], p["delivery"]) for p in pending(server)] == [(ALICE, "plain")]
    send_command(server, f"подтвердить {token_of(confirmation)}")
    reply = wait_notice(sink, ALICE, "command-reply")
    assert "неизвестен, уже использован или просрочен" in text(reply)
    assert members(server) == {}

    # A reply to -request whose Subject carries the token among Russian words confirms.
    send_command(server, "", subject=f"Re: {second.message['Subject']}")
    wait_notice(sink, ALICE, "welcome")
    assert members(server) == {ALICE: "plain"}
    sentinel(server, sink)
    assert sorted(m.message["X-Listserv-Notice"] for m in sink.messages_to(ALICE)) == [
        "command-reply",
        "command-reply",
        "confirm",
        "confirm",
        "welcome",
    ]


def test_members_read_their_address_in_unicode(start_server, sink: Sink) -> None:
    server = start_server(lists=[list_table("test", language="kk")])
    member = "aigul@мысал.қаз"
    assert cli(server.config_path, "members", "add", "test", member).exit_code == 0
    welcome = wait_notice(sink, "aigul@xn--80awbu3c.xn--80ao21a", "welcome")
    body = text(welcome)
    assert "Сіздің aigul@мысал.қаз мекенжайыңыз" in body
    assert "xn--" not in body
    assert "«жазылымнан шығу» деп жазыңыз" in body
