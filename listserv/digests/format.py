"""What every format of a digest issue shares: the :class:`Issue` (the list, its numbering and
the posts as members received them), its table of contents, the template context, and the
headers and parts each format's message carries.

Pure functions of an issue and the templates: nothing in the digest formats (``mime``,
``plain``, ``html``, ``bodies``) reads the database or sends anything, so each format is
tested on plain messages.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from listserv.mail.addresses import format_address
from listserv.mail.codec import MAIL_POLICY, subject_of
from listserv.mail.list_headers import add_list_headers
from listserv.mail.templates import Templates, body_encoding, one_line
from listserv.store.lists import MailList

# The headers RFC 1153 keeps for each message of a digest, in its order.
KEPT_HEADERS = ("Date", "From", "To", "Cc", "Subject", "Message-ID", "Keywords", "Summary")


@dataclass(frozen=True)
class Issue:
    mlist: MailList
    volume: int
    number: int
    date: datetime
    posts: list[EmailMessage]

    @cached_property
    def contents(self) -> list[TocEntry]:
        return [toc_entry(i, post) for i, post in enumerate(self.posts, 1)]


@dataclass(frozen=True)
class TocEntry:
    """What the table of contents shows of one post."""

    number: int
    subject: str
    sender: str
    date: str


def toc_entry(number: int, post: EmailMessage) -> TocEntry:
    subject = one_line(subject_of(post))
    return TocEntry(number, subject, author(post), header_text(post, "Date"))


def author(post: EmailMessage) -> str:
    """The poster as one readable line: the display name and address."""
    value = header_text(post, "From")
    name, address = parseaddr(value)
    if not address:
        return value or "?"
    return f"{name} <{address}>" if name else address


def header_text(message: EmailMessage, name: str) -> str:
    """A header's decoded value on one line, "" when absent or undecodable."""
    try:
        return one_line(str(message.get(name, "") or ""))
    except (ValueError, LookupError, AttributeError, TypeError):
        # The email package's parser itself fails on some values (From: ".:")
        return ""


def context(issue: Issue) -> dict[str, Any]:
    """What every digest template gets."""
    mlist = issue.mlist
    return {
        "mlist": mlist,
        "list_name": mlist.name,
        "title": mlist.config.title or mlist.name,
        "volume": issue.volume,
        "number": issue.number,
        "date": format_datetime(issue.date.astimezone(ZoneInfo(mlist.config.digest.timezone))),
        "issued_at": issue.date,
        "posts": issue.contents,
        "list_address": mlist.address(),
        "request_address": mlist.address("request"),
        "join_address": mlist.address("join"),
        "leave_address": mlist.address("leave"),
        "owner_address": mlist.address("owner"),
        "can_post": mlist.config.posting != "announce",
    }


def render(templates: Templates, issue: Issue, name: str, **extra: Any) -> str:
    return templates.text(issue.mlist.config.language, name, **context(issue), **extra)


def text_part(text: str, subtype: str = "plain") -> EmailMessage:
    part = EmailMessage(policy=MAIL_POLICY)
    part.set_content(text, subtype=subtype, charset="utf-8", cte=body_encoding(text))
    del part["MIME-Version"]
    return part


def with_digest_headers(message: EmailMessage, issue: Issue, templates: Templates) -> EmailMessage:
    """The headers every format of an issue carries: the list's, and the issue's name."""
    mlist = issue.mlist
    message["From"] = format_address(mlist.config.title, mlist.address("request"))
    message["To"] = mlist.address()
    if mlist.config.posting != "announce":
        message["Reply-To"] = mlist.address()
    message["Subject"] = one_line(render(templates, issue, "digest_subject.txt"))
    message["Date"] = format_datetime(issue.date)
    message["Message-ID"] = make_msgid(domain=mlist.domain)
    message["Content-Language"] = mlist.config.language
    if "MIME-Version" not in message:
        message["MIME-Version"] = "1.0"
    add_list_headers(message, mlist)
    return message


def new_boundary(message: EmailMessage) -> None:
    message.set_boundary("===listserv-digest-" + secrets.token_hex(12))


def footer_text(templates: Templates, issue: Issue) -> str:
    return render(templates, issue, "digest_footer.txt")


def list_footer(templates: Templates, issue: Issue) -> str:
    """The footer the list adds to each post (see ``pipeline.decorate``), as it reads there."""
    if not issue.mlist.config.footer:
        return ""
    return render(templates, issue, "footer.txt").strip()
