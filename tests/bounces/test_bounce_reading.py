"""Reading bounces, scoring, VERP, one-click tokens and per-recipient copies: pure functions
on plain messages and bytes."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from mailauth import rsa_key
from samples import dsn_bytes

from listserv.auth.dkim import Signer
from listserv.auth.one_click import load_secret, make_token, read_token
from listserv.auth.verp import verp_address, verp_hint, verp_member
from listserv.bounces.feedback import is_feedback_report
from listserv.bounces.reports import classify, read_bounce
from listserv.bounces.scores import next_score
from listserv.config import ListConfig
from listserv.delivery.personalize import personalized, prepare_post
from listserv.delivery.smtp_terms import data_payload
from listserv.mail.codec import parse, to_bytes

SAMPLES = Path(__file__).parents[1] / "data" / "bounces"
DOMAIN = "lists.example.org"
SECRET = b"a test secret of thirty-two bytes"


def sample(name: str) -> email.message.Message:
    return email.message_from_bytes((SAMPLES / name).read_bytes())


@pytest.mark.parametrize(
    ("name", "address", "kind"),
    [
        ("dsn_10.txt", "anne.person@dom.ain", "hard"),  # Postfix DSN, 550 user unknown
        ("postfix_01.txt", "xxxxx@local.ie", "hard"),  # older Postfix
        ("exim_01.txt", "userx@its.example.nl", "hard"),
        ("microsoft_01.txt", "userx@example.com", "hard"),  # Exchange
        ("dsn_13.txt", "userx@example.com", "hard"),  # Exchange DSN, 5.1.1
        ("simple_17.txt", "userx@example.com", "hard"),  # Gmail
        ("simple_42.txt", "david.r@gmail.com", "policy"),  # Gmail 5.7.1 spam refusal
        ("qmail_01.txt", "userx@example.de", "hard"),
        ("yahoo_01.txt", "userx@example.com", "soft"),  # gave up after 4.4.1
        ("dsn_01.txt", "userx@example.com", "soft"),  # over quota: a live mailbox
    ],
)
def test_real_world_bounces_name_the_address_and_kind(name: str, address: str, kind: str) -> None:
    failures = read_bounce(sample(name))
    assert [(f.address, f.kind) for f in failures] == [(address, kind)]


@pytest.mark.parametrize(
    ("status", "diagnostic", "kind"),
    [
        (
            "5.1.1",
            "smtp; 550 5.1.1 The email account that you tried to reach does not exist",
            "hard",
        ),
        (
            "5.0.0",
            "smtp; 550-5.7.26 Unauthenticated email from example.com is not accepted "
            "due to domain's DMARC policy",
            "policy",
        ),
        ("5.0.0", "smtp; 554 5.7.1 Message rejected under suspicion of SPAM", "policy"),
        (
            "550",
            "spam message rejected. Please visit http://help.mail.ru/notspam-support",
            "policy",
        ),
        ("5.2.2", "smtp; 552 5.2.2 Mailbox full", "soft"),
        ("4.4.7", "delivery time expired", "soft"),
        ("550", "No such user here", "hard"),
        ("451", "try again later", "soft"),
        ("", "host 5.9.10.20 said something", "unrecognised"),
    ],
)
def test_classify(status: str, diagnostic: str, kind: str) -> None:
    assert classify(status, diagnostic) == kind


def test_delayed_dsn_is_not_a_failure() -> None:
    report = dsn_bytes("late@x.example", action="delayed", status="4.4.1")
    assert [(f.address, f.kind) for f in read_bounce(email.message_from_bytes(report))] == [
        ("late@x.example", "delayed")
    ]


def config(**settings: object) -> ListConfig:
    return ListConfig(name="test", **settings)  # type: ignore[arg-type]


def test_score_rises_once_per_interval_and_restarts_after_quiet_days() -> None:
    cfg = config(bounce_hard_weight=1.0, bounce_soft_weight=0.5)
    now = datetime(2026, 1, 10, tzinfo=UTC)
    assert next_score(cfg, 0.0, None, "hard", now) == (1.0, True)
    assert next_score(cfg, 1.0, now - timedelta(hours=2), "hard", now) == (1.0, False)
    assert next_score(cfg, 1.0, now - timedelta(days=2), "soft", now) == (1.5, True)
    assert next_score(cfg, 4.0, now - timedelta(days=8), "hard", now) == (1.0, True)
    assert next_score(cfg, 2.0, None, "policy", now) == (2.0, False)
    assert next_score(cfg, 2.0, None, "delayed", now) == (2.0, False)


def test_verp_addresses_are_signed_and_only_our_signature_names_a_member() -> None:
    bounce = verp_address(SECRET, "test", DOMAIN, "a.b+tag@x.example")
    detail = bounce.split("+", 1)[1].split("@")[0]
    assert re.fullmatch(r"a\.b\+tag=x\.example\+[a-z2-7]{16}", detail), bounce
    assert verp_member(SECRET, "test", detail) == "a.b+tag@x.example"
    assert verp_member(SECRET, "test", detail.upper()) == "a.b+tag@x.example"  # MTAs may shout
    # Unsigned, signed for another member, list or secret: a hint at most, never a member.
    assert verp_member(SECRET, "test", "a.b+tag=x.example") is None
    assert verp_hint("a.b+tag=x.example") == "a.b+tag@x.example"
    signature = detail.rsplit("+", 1)[1]
    assert verp_member(SECRET, "test", f"victim=x.example+{signature}") is None
    assert verp_member(SECRET, "other", detail) is None
    assert verp_member(b"another secret of thirty-two byte", "test", detail) is None
    assert verp_hint("no-equals-sign") is None
    assert verp_address(SECRET, "test", DOMAIN, '"odd one"@x.example') == f"test-bounces@{DOMAIN}"


def test_tokens_are_per_member_and_unforgeable(tmp_path: Path) -> None:
    secret = load_secret(tmp_path / "keys" / "web.secret")
    assert (tmp_path / "keys" / "web.secret").stat().st_mode & 0o777 == 0o600
    token = make_token(secret, "test", "a@x.example")
    assert read_token(secret, token) == ("test", "a@x.example")
    other = make_token(secret, "test", "b@x.example")
    # a's signature on b's address, and b's token under another secret, are refused
    assert read_token(secret, other.split(".")[0] + "." + token.split(".")[1]) is None
    assert read_token(b"another secret of enough length.", token) is None
    assert read_token(secret, "garbage") is None
    assert read_token(secret, token[:-2]) is None


def post(body: str = "Hello, list.\n", cte: str = "8bit") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "alice@x.example"
    message["To"] = f"test@{DOMAIN}"
    message["Subject"] = "Hi"
    message.set_content(body, cte=cte)
    return parse(to_bytes(message))


def decorate_with_footer(message: EmailMessage, url: str) -> EmailMessage:
    from listserv.posting.decorate import add_footer

    message["List-Unsubscribe"] = f"<mailto:test-leave@{DOMAIN}>"
    add_footer(message, f"Unsubscribe: {url}\n" if url else "Unsubscribe by mail\n")
    return message


def link(list_name: str, address: str) -> str:
    return f"https://{DOMAIN}/u/{list_name}.{address}"


def test_without_links_every_copy_is_one_message_signed_once() -> None:
    raw, _ = prepare_post(post(), decorate_with_footer, one_click=False)
    signer = Signer(rsa_key("list")[0], "ls1", DOMAIN, DOMAIN)
    verp_only = personalized(raw, "", "test", DOMAIN, None, signer, SECRET)
    copies = verp_only.copies(["a@x.example", "b@y.example"])
    assert [(sender, rcpt) for sender, rcpt, _ in copies] == [
        (verp_address(SECRET, "test", DOMAIN, "a@x.example"), "a@x.example"),
        (verp_address(SECRET, "test", DOMAIN, "b@y.example"), "b@y.example"),
    ]
    assert copies[0][2] is copies[1][2]
    assert copies[0][2].startswith(b"DKIM-Signature: ") and copies[0][2].endswith(raw)


def footer_starting_with_the_link(message: EmailMessage, url: str) -> EmailMessage:
    from listserv.posting.decorate import add_footer

    add_footer(message, f"{url}\n")
    return message


@pytest.mark.parametrize(
    "body", ["Hello, list.\n", ".a line with a dot\n..and another\n.\n", "Привет\n"]
)
def test_a_copy_as_smtp_data_is_the_copy_dot_stuffed(body: str) -> None:
    dotted = lambda name, address: "." + link(name, address)  # noqa: E731
    for decorate in (decorate_with_footer, footer_starting_with_the_link):
        raw, marker = prepare_post(post(body), decorate, one_click=True)
        for made in (link, dotted, None):
            copies = personalized(raw, marker, "test", DOMAIN, made, None, SECRET)
            message = copies.message_for("a@x.example")
            assert copies.message_for("a@x.example", dot_stuffed=True) == data_payload(message)


def test_each_copy_gets_its_own_headers_and_footer_link() -> None:
    raw, marker = prepare_post(post(), decorate_with_footer, one_click=True)
    assert marker and b"List-Unsubscribe" not in raw
    copy = parse(
        personalized(raw, marker, "test", DOMAIN, link, None, SECRET).message_for("a@x.example")
    )
    assert copy["List-Unsubscribe"] == (
        f"<https://{DOMAIN}/u/test.a@x.example>, <mailto:test-leave@{DOMAIN}>"
    )
    assert copy["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = copy.get_content().replace("\r\n", "\n")
    assert text.endswith(f"Unsubscribe: https://{DOMAIN}/u/test.a@x.example\n")
    assert copy["Subject"] == "Hi"


def test_a_body_that_would_hide_the_marker_gets_the_plain_footer() -> None:
    raw, marker = prepare_post(post("Привет\n", cte="base64"), decorate_with_footer, True)
    assert marker == ""
    copy = parse(
        personalized(raw, marker, "test", DOMAIN, link, None, SECRET).message_for("a@x.example")
    )
    assert copy.get_content().replace("\r\n", "\n") == "Привет\n\nUnsubscribe by mail\n"
    assert copy["List-Unsubscribe"].startswith(f"<https://{DOMAIN}/u/test.a@x.example>")


def test_feedback_report_is_recognised() -> None:
    arf = email.message_from_string(
        'Content-Type: multipart/report; report-type=feedback-report; boundary="x"\n\n--x--\n'
    )
    assert is_feedback_report(arf)
    assert not is_feedback_report(sample("dsn_10.txt"))


def test_mail_that_is_no_bounce_names_nobody() -> None:
    assert read_bounce(email.message_from_bytes(b"garbage\r\n\r\n\xff\xfe")) == []
    assert read_bounce(email.message_from_bytes(b"Content-Type: multipart/report\r\n\r\nx")) == []
