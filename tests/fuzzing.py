"""Property checks for the parts that read untrusted bytes, shared by the test suite (a few
examples each) and ``fuzz/run.py`` (as many as you like).

Each ``check_*`` takes what a strategy drew and asserts the property; ``TARGETS`` pairs them.
Mail is drawn as arbitrary bytes and, more often, as something that looks like mail: header
fields from the ones we read, RFC 2047 words hiding CR and LF, charsets, nested multiparts.
"""

from __future__ import annotations

import base64
import email
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from listserv.app import App, make_app
from listserv.auth.authentication import authserv_id_of
from listserv.auth.one_click import make_token, read_token
from listserv.auth.verp import verp_address, verp_hint, verp_member
from listserv.bounces.feedback import claimed_members, is_feedback_report
from listserv.bounces.reports import read_bounce
from listserv.commands.parse import MAX_QUOTE, message_commands, parse_commands
from listserv.config import load_config
from listserv.delivery.personalize import prepare_post
from listserv.digests.format import Issue
from listserv.digests.html import html_digest
from listserv.digests.mime import mime_digest
from listserv.digests.plain import plain_digest
from listserv.intake.limits import refusal
from listserv.intake.missing import with_required_headers
from listserv.mail.addresses import parse_recipient
from listserv.mail.codec import parse, subject_of, to_bytes
from listserv.moderation.verdicts import read_verdict
from listserv.posting.pipeline import decorate
from listserv.store.lists import MailList

DOMAIN = "lists.example.org"
SECRET = b"a fuzzing secret of thirty-two b"
HEADER_NAMES = [
    "From",
    "To",
    "Cc",
    "Subject",
    "Reply-To",
    "Message-ID",
    "Date",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Auto-Submitted",
    "Precedence",
    "List-Id",
    "Authentication-Results",
    "ARC-Authentication-Results",
    "X-BeenThere",
    "In-Reply-To",
    "References",
]
CONTENT_TYPES = [
    "text/plain",
    "text/plain; charset=utf-8",
    "text/plain; charset=koi8-r",
    "text/plain; charset=x-unknown",
    "text/html; charset=windows-1251",
    "multipart/mixed",
    "multipart/alternative",
    "multipart/digest",
    "multipart/report; report-type=feedback-report",
    "multipart/report; report-type=delivery-status",
    "message/rfc822",
    "message/delivery-status",
    "message/feedback-report",
    "text/rfc822-headers",
    "application/octet-stream",
]
ENCODINGS = ["7bit", "8bit", "base64", "quoted-printable", "binary", "x-uuencode", "bogus"]

text = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
words = st.sampled_from(
    ["subscribe", "unsubscribe", "help", "confirm", "approve", "reject", "отписаться",
     "Re:", "end", "-- ", ">", "digest", "set delivery plain", "=?", "?=", "\r", "\n", ";"]
)  # fmt: skip


@st.composite
def encoded_word(draw: st.DrawFn) -> str:
    """An RFC 2047 word whose decoded text may carry CR, LF, NUL…"""
    value = draw(st.text(max_size=30))
    charset = draw(st.sampled_from(["utf-8", "koi8-r", "iso-8859-1", "x-bad"]))
    data = value.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        return f"=?{charset}?b?{base64.b64encode(data).decode()}?="
    return f"=?{charset}?q?{data.hex()}?="


header_value = st.one_of(
    text,
    encoded_word(),
    st.lists(st.one_of(words, text, encoded_word()), max_size=6).map(" ".join),
    st.sampled_from([f"a@x.example, <b@{DOMAIN}>", "<>", '"q\\"x" <@>', "(c) x@y. (d)"]),
)


@st.composite
def header_block(draw: st.DrawFn, content_type: str | None = None) -> str:
    fields = draw(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), header_value), max_size=8))
    lines = [f"{name}: {value}" for name, value in fields]
    if content_type:
        lines.append(f"Content-Type: {content_type}")
    if draw(st.booleans()):
        lines.append(f"Content-Transfer-Encoding: {draw(st.sampled_from(ENCODINGS))}")
    return "\r\n".join(lines)


@st.composite
def entity(draw: st.DrawFn, depth: int = 0) -> str:
    """A MIME entity: a header block and a body, a multipart nesting more of them."""
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    if content_type.startswith("multipart/") and depth < 3:
        boundary = draw(st.sampled_from(["b", "=_b", "x y", "b" * 70, ""]))
        parts = draw(st.lists(entity(depth + 1), max_size=3))
        inner = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts)
        closing = draw(st.sampled_from([f"--{boundary}--\r\n", ""]))
        head = draw(header_block(f'{content_type}; boundary="{boundary}"'))
        return f"{head}\r\n\r\n{draw(text)}\r\n{inner}{closing}"
    if content_type == "message/rfc822" and depth < 3:
        return f"{draw(header_block(content_type))}\r\n\r\n{draw(entity(depth + 1))}"
    body = draw(st.lists(st.one_of(words, text), max_size=8).map("\r\n".join))
    return f"{draw(header_block(content_type))}\r\n\r\n{body}"


def to_wire(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


address_like = st.from_regex(r"[a-zA-Z0-9=.+_-]{1,40}", fullmatch=True)
mail_bytes = st.one_of(
    st.binary(max_size=400),
    entity().map(to_wire),
    st.tuples(entity().map(to_wire), st.binary(max_size=40)).map(b"".join),
)


# ---- the running parts the checks need ------------------------------------------------------


@cache
def app() -> App:
    """The real App on a throwaway config (its database is never touched here)."""
    directory = Path(tempfile.mkdtemp(prefix="listserv-fuzz-"))
    path = directory / "config.toml"
    path.write_text(
        f'[server]\ndomain = "{DOMAIN}"\n[database]\nurl = "sqlite:///{directory}/x.db"\n'
        '[[lists]]\nname = "test"\ntitle = "Тест"\n',
        encoding="utf-8",
    )
    return make_app(load_config(path))


def mailing_list() -> MailList:
    (config,) = app().config.lists
    return MailList(1, config, DOMAIN)


# ---- checks -------------------------------------------------------------------------------


def check_intake(raw: bytes) -> None:
    """Any bytes: a precise SMTP refusal, or a message that decorates, serialises, is made
    into personalized copies and into all three digests without an exception."""
    problem = refusal(raw, app().config.server)
    if problem is not None:
        assert problem[:3] in ("552", "554") and "\n" not in problem
        return
    stored = with_required_headers(raw, DOMAIN)
    message = parse(stored)
    assert "\n" not in subject_of(message) and "\r" not in subject_of(message)
    mlist = mailing_list()
    distributed = to_bytes(decorate(app(), mlist, message))
    post = parse(distributed)
    prepare_post(parse(stored), lambda m, url: decorate(app(), mlist, m, None, url), True)
    issue = Issue(mlist, 1, 1, datetime(2026, 1, 1, tzinfo=UTC), [post])
    for build in (mime_digest, plain_digest, html_digest):
        to_bytes(build(issue, app().templates))


def check_commands(subject: str, body: str) -> None:
    found = parse_commands(subject, body)
    for command in found.commands:
        assert len(command.line) <= MAX_QUOTE and command.line.isprintable()
    read_verdict(body)


def check_command_mail(raw: bytes) -> None:
    message_commands(parse(raw))


def check_links_and_addresses(value: str, member: str) -> None:
    """Token, VERP and recipient readers take any text; only what we signed names anyone."""
    assert read_token(SECRET, value) is None
    assert verp_member(SECRET, "test", value) is None
    hint = verp_hint(value)
    if hint is not None:  # what we would sign for that address is read back as it
        ours = verp_address(SECRET, "test", DOMAIN, hint)
        detail = parse_recipient(ours, DOMAIN, {"test"})
        assert detail is None or verp_member(SECRET, "test", detail.detail) in (hint, None)
    parse_recipient(value, DOMAIN, {"test"})
    parse_recipient(f"test-bounces+{value}@{DOMAIN}", DOMAIN, {"test"})
    authserv_id_of(value)
    authserv_id_of(value, arc=True)
    token = make_token(SECRET, "test", member)
    assert read_token(SECRET, token) == ("test", member)


def check_bounce(raw: bytes) -> None:
    message = email.message_from_bytes(raw)
    for failure in read_bounce(message):
        assert "@" in failure.address
    if is_feedback_report(message):
        claimed_members(message, "")


TARGETS: dict[str, tuple[Callable[..., None], tuple[Any, ...]]] = {
    "intake": (check_intake, (mail_bytes,)),
    "commands": (check_commands, (st.one_of(text, header_value), st.one_of(text, words))),
    "command_mail": (check_command_mail, (mail_bytes,)),
    "links": (check_links_and_addresses, (st.one_of(text, address_like), st.emails())),
    "bounces": (check_bounce, (mail_bytes,)),
}
