"""Reading email commands from a message: a pure function, tested on plain messages."""

import base64
from email.message import EmailMessage
from pathlib import Path

import pytest

from listserv.commands.parse import (
    MAX_COMMANDS,
    MAX_OTHER_LINES,
    Command,
    message_commands,
    mode_of,
    parse_commands,
    read_command,
)
from listserv.config import ConfigError, parse_config
from listserv.mail.codec import parse
from listserv.mail.html_content import html_to_text
from listserv.mail.text import plain_text


def names(subject: str, body: str) -> list[tuple[str, tuple[str, ...]]]:
    return [(c.name, c.args) for c in parse_commands(subject, body).commands]


def test_keywords_are_case_insensitive_and_arguments_kept_as_written() -> None:
    assert read_command("SUBSCRIBE Digest") == Command("subscribe", ("Digest",), "SUBSCRIBE Digest")
    assert read_command("  confirm   AbC_-123  ") == Command(
        "confirm", ("AbC_-123",), "confirm AbC_-123"
    )
    assert read_command("Set Delivery nomail").args == ("Delivery", "nomail")
    assert read_command("settings") is None
    assert read_command("Hello there") is None


def test_russian_and_kazakh_words_name_the_same_commands() -> None:
    assert read_command("Подписаться").name == "subscribe"
    assert read_command("отписаться").name == "unsubscribe"
    assert read_command("ПОМОЩЬ").name == "help"
    assert read_command("жазылымнан шығу").name == "unsubscribe"
    assert read_command("жазылу digest") == Command("subscribe", ("digest",), "жазылу digest")
    assert read_command("растау abc").name == "confirm"


def test_subject_is_the_first_command_line_without_reply_markers() -> None:
    assert names("Re: Fwd: confirm TOKEN123", "") == [("confirm", ("TOKEN123",))]
    assert names("help", "subscribe digest\n") == [("help", ()), ("subscribe", ("digest",))]


def test_a_subject_that_is_no_command_is_ignored_not_counted() -> None:
    found = parse_commands("Question about the list", "info\n")
    assert [c.name for c in found.commands] == ["info"]
    assert found.unknown == []


def test_reading_stops_at_end_signature_and_quoted_text() -> None:
    assert names("", "help\nend\nsubscribe\n") == [("help", ())]
    assert names("", "help\nконец\nsubscribe\n") == [("help", ())]
    assert names("", "info\n-- \nunsubscribe\n") == [("info", ())]
    assert names("", "info\n> subscribe\nunsubscribe\n") == [("info", ())]
    assert names("end", "help\n") == []


def test_reading_stops_after_a_few_lines_that_are_not_commands() -> None:
    body = "help\n" + "".join(f"blah {i}\n" for i in range(MAX_OTHER_LINES)) + "lists\n"
    found = parse_commands("", body)
    assert [c.name for c in found.commands] == ["help"]
    assert len(found.unknown) == MAX_OTHER_LINES


def test_blank_lines_are_skipped_and_repeated_commands_count_once() -> None:
    assert names("confirm TOK", "\n\nconfirm TOK\n\n") == [("confirm", ("TOK",))]


def test_commands_per_message_are_bounded() -> None:
    body = "".join(f"confirm token{i}\n" for i in range(MAX_COMMANDS + 5))
    assert len(parse_commands("", body).commands) == MAX_COMMANDS


def test_html_becomes_text_with_quotes_marked() -> None:
    html = (
        "<html><head><style>p {}</style></head><body><p>Subscribe</p><div>info<br>end</div>"
        "<blockquote>help</blockquote></body></html>"
    )
    assert html_to_text(html).split() == ["Subscribe", "info", "end", ">", "help"]
    assert names("", html_to_text("<p>help</p><blockquote>subscribe</blockquote>")) == [
        ("help", ())
    ]


def message(body: str, subtype: str = "plain", charset: str = "utf-8") -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = "x"
    msg.set_content(body, subtype=subtype, charset=charset)
    return msg


def test_plain_part_is_preferred_in_multipart_alternative() -> None:
    msg = message("lists\n")
    msg.add_alternative("<p>help</p>", subtype="html")
    assert plain_text(msg).strip() == "lists"


def test_html_only_body_is_read_as_text() -> None:
    assert [c.name for c in message_commands(message("<p>info</p>", "html")).commands] == ["info"]


def test_cyrillic_bodies_in_legacy_charsets_are_decoded() -> None:
    for charset in ("windows-1251", "koi8-r"):
        raw = (
            f"From: a@x.example\r\nSubject: =?{charset}?b?"
            + base64.b64encode("помощь".encode(charset)).decode()
            + f"?=\r\nContent-Type: text/plain; charset={charset}\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
        ).encode() + "подписаться digest\r\n".encode(charset)
        found = message_commands(parse(raw))
        assert [(c.name, c.args) for c in found.commands] == [
            ("help", ()),
            ("subscribe", ("digest",)),
        ], charset


def test_a_message_without_text_has_no_commands() -> None:
    msg = EmailMessage()
    msg["Subject"] = "hello"
    msg.set_content(b"\x00\x01", maintype="application", subtype="octet-stream")
    assert message_commands(msg).commands == []


def test_malformed_messages_never_raise() -> None:
    samples = [
        b"Subject: help\r\nContent-Type: multipart/mixed\r\n\r\nhelp\r\n",
        b"Subject: help\r\nContent-Type: text/plain; charset=bogus\r\n\r\ninfo\r\n",
        b"Subject: help\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64\r\n",
        b"Subject: x\r\nContent-Type: text/html\r\n\r\n<p>info<p><<<>>\xff\xfe",
        b"",
        b"\xff\xfe\x00garbage",
    ]
    found = [[c.name for c in message_commands(parse(raw)).commands] for raw in samples]
    assert found == [["help"], ["help", "info"], ["help"], ["info"], [], []]


def test_confirmation_expiry_must_be_positive(tmp_path: Path) -> None:
    server = {"domain": "lists.example.org", "confirmation_expiry_days": 0}
    with pytest.raises(ConfigError, match=r"server\.confirmation_expiry_days"):
        parse_config({"server": server}, tmp_path / "config.toml")
    server["confirmation_expiry_days"] = 0.5
    assert parse_config({"server": server}, tmp_path).server.confirmation_expiry_days == 0.5


def test_delivery_modes_have_russian_and_kazakh_words() -> None:
    assert names("", "режим дайджест\nалу тәсілі мәтін\nset delivery nomail") == [
        ("set", ("дайджест",)),
        ("set", ("мәтін",)),
        ("set", ("delivery", "nomail")),
    ]
    assert [mode_of(w) for w in ("Дайджест", "текст", "үзіліс", "пауза", "often")] == [
        "digest",
        "plain",
        "nomail",
        "nomail",
        None,
    ]


def test_a_confirmation_subject_confirms_wherever_its_token_stands() -> None:
    token = "k3zq7m2xw4yv5tnpb6rf2jd7hsa4ceuo"
    for subject in (
        f"Re: Подтвердите подписку на рассылку «Экология» (подтвердить {token})",
        f"Жауап: «Экология» таратылымына жазылуды растаңыз (растау {token})",
        f'RE: Please confirm your subscription to "X" (confirm {token})',
        f"confirm {token}",
    ):
        assert names(subject, "") == [("confirm", (token,))], subject
    # Words alone are no token.
    assert names("Re: Please confirm your subscription", "") == []
