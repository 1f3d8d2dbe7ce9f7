"""Digest issues as mail: MIME (RFC 2046 multipart/digest), plain text (RFC 1153) and HTML.

Pure functions of an :class:`Issue` (the list, its numbering and the posts as members
received them) and the templates: nothing here reads the database or sends anything, so each
format is tested on plain messages.
"""

from __future__ import annotations

import copy
import html
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup

from listserv.mail.addresses import format_address
from listserv.mail.codec import MAIL_POLICY, subject_of
from listserv.mail.html_content import html_to_text, sanitize_html
from listserv.mail.list_headers import add_list_headers
from listserv.mail.templates import Templates, body_encoding, one_line
from listserv.store.lists import MailList

# RFC 1153: the preamble ends with 70 hyphens, each message with 30.
PREAMBLE_SEPARATOR = "-" * 70
MESSAGE_SEPARATOR = "-" * 30
# The headers RFC 1153 keeps for each message of a digest, in its order.
KEPT_HEADERS = ("Date", "From", "To", "Cc", "Subject", "Message-ID", "Keywords", "Summary")
# A MIME digest keeps those, what threading needs, and what describes the body.
MIME_KEPT_HEADERS = (*KEPT_HEADERS, "In-Reply-To", "References", "Reply-To", "MIME-Version")


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
    except (ValueError, LookupError):
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


# ---- MIME ------------------------------------------------------------------------------------


def kept_post(post: EmailMessage) -> EmailMessage:
    """The post with only the headers a digest keeps (and its Content-* headers)."""
    kept = {h.lower() for h in MIME_KEPT_HEADERS}
    # A deep copy keeps the body byte for byte, 8-bit charsets included.
    trimmed = copy.deepcopy(post)
    for name in set(trimmed.keys()):
        if name.lower() not in kept and not name.lower().startswith("content-"):
            del trimmed[name]
    return trimmed


def mime_digest(issue: Issue, templates: Templates) -> EmailMessage:
    """multipart/mixed: masthead and contents, multipart/digest of the posts, footer."""
    front = render(templates, issue, "digest_masthead.txt")
    front += "\n" + render(templates, issue, "digest_toc.txt")
    posts = EmailMessage(policy=MAIL_POLICY)
    posts.set_payload([])
    posts["Content-Type"] = "multipart/digest"
    new_boundary(posts)
    for post in issue.posts:
        part = EmailMessage(policy=MAIL_POLICY)
        part["Content-Type"] = "message/rfc822"
        # Posts may carry 8-bit bodies; the declaration also allows plain 7-bit ones.
        part["Content-Transfer-Encoding"] = "8bit"
        part.set_payload([kept_post(post)])
        posts.attach(part)
    message = EmailMessage(policy=MAIL_POLICY)
    message["Content-Type"] = "multipart/mixed"
    message.set_payload([text_part(front), posts, text_part(footer_text(templates, issue))])
    new_boundary(message)
    return with_digest_headers(message, issue, templates)


def footer_text(templates: Templates, issue: Issue) -> str:
    return render(templates, issue, "digest_footer.txt")


def list_footer(templates: Templates, issue: Issue) -> str:
    """The footer the list adds to each post (see ``pipeline.decorate``), as it reads there."""
    if not issue.mlist.config.footer:
        return ""
    return render(templates, issue, "footer.txt").strip()


# ---- readable bodies -------------------------------------------------------------------------


def decoded_text(part: EmailMessage) -> str:
    """A text part's content as str, whatever (or however wrongly) its charset is declared."""
    try:
        content = part.get_content()
        if isinstance(content, str):
            return content
    except (LookupError, UnicodeError, KeyError, AttributeError):
        pass
    payload = part.get_payload(decode=True)
    raw = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset() or "utf-8"
    try:
        return raw.decode(charset, errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def is_attachment(part: EmailMessage) -> bool:
    return str(part.get("Content-Disposition", "")).strip().lower().startswith("attachment")


@dataclass(frozen=True)
class BodyStyle:
    """How one output format shows each kind of part of a post."""

    text: Callable[[str], str]
    html: Callable[[str], str]
    omitted: Callable[[EmailMessage], str]
    prefer: str  # the alternative to show when a post offers both
    # The list footer each post carries; the digest shows it once, at its end.
    footer: str = ""


def without_footer(text: str, footer: str) -> str:
    body = text.rstrip()
    return body[: -len(footer)].rstrip() if footer and body.endswith(footer) else text


def readable(part: EmailMessage, style: BodyStyle) -> list[str]:
    """A post's body as pieces in the output format: text shown, HTML converted or
    sanitised, anything else (images, attachments) replaced by a one-line note."""
    ctype = part.get_content_type()
    # is_multipart() is false for a multipart whose boundary is missing: it is shown as a note.
    if part.is_multipart() and ctype == "multipart/alternative":
        choices = list(part.iter_parts())
        chosen = next((p for p in choices if p.get_content_type() == style.prefer), None)
        chosen = chosen or next(
            (p for p in choices if p.get_content_type() in ("text/plain", "text/html")), None
        )
        return readable(chosen, style) if chosen is not None else [style.omitted(part)]
    if part.is_multipart() and ctype != "message/rfc822":
        return [piece for sub in part.iter_parts() for piece in readable(sub, style)]
    if ctype == "text/plain" and not is_attachment(part):
        text = without_footer(decoded_text(part).replace("\r\n", "\n"), style.footer)
        return [style.text(text)] if text.strip() else []
    if ctype == "text/html" and not is_attachment(part):
        return [style.html(decoded_text(part))]
    return [style.omitted(part)]


def omitted_note(templates: Templates, language: str) -> Callable[[EmailMessage], str]:
    def note(part: EmailMessage) -> str:
        payload = part.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else size_as_sent(part)
        return one_line(
            templates.text(
                language,
                "digest_omitted.txt",
                type=part.get_content_type(),
                filename=one_line(part.get_filename() or ""),
                size=size,
            )
        )

    return note


def size_as_sent(part: EmailMessage) -> int:
    """The bytes of an attached message; str() would decode it and fail on 8-bit headers or
    an unknown charset (found by fuzz/run.py), the bytes generator passes them through."""
    try:
        return len(part.as_bytes(policy=MAIL_POLICY))
    except (LookupError, UnicodeError):
        return 0


# ---- plain (RFC 1153) ------------------------------------------------------------------------


def stuffed(text: str) -> str:
    """A body line that looks like a digest separator would split the digest: indent it."""
    lines = text.splitlines()
    return "\n".join(
        " " + line if line in (MESSAGE_SEPARATOR, PREAMBLE_SEPARATOR) else line for line in lines
    )


def plain_text(issue: Issue, templates: Templates) -> str:
    """The whole issue as RFC 1153 text."""
    language = issue.mlist.config.language
    style = BodyStyle(
        text=lambda s: s,
        html=html_to_text,
        omitted=omitted_note(templates, language),
        prefer="text/plain",
        footer=list_footer(templates, issue),
    )
    out = [render(templates, issue, "digest_masthead.txt").rstrip("\n"), ""]
    out += [render(templates, issue, "digest_toc.txt").rstrip("\n"), "", PREAMBLE_SEPARATOR, ""]
    for post in issue.posts:
        for name in KEPT_HEADERS:
            value = header_text(post, name)
            # Every message of an RFC 1153 digest starts with headers; Subject is always there.
            if value or name == "Subject":
                out.append(f"{name}: {value}")
        body = "\n\n".join(piece.strip("\n") for piece in readable(post, style))
        out += ["", stuffed(body), "", MESSAGE_SEPARATOR, ""]
    # The trailer: the list's footer, then RFC 1153's end line.
    out += [stuffed(footer_text(templates, issue).rstrip("\n")), ""]
    end = one_line(render(templates, issue, "digest_end.txt"))
    out += [end, "*" * len(end), ""]
    return "\n".join(out)


def plain_digest(issue: Issue, templates: Templates) -> EmailMessage:
    """A single UTF-8 text/plain part in RFC 1153 form."""
    message = EmailMessage(policy=MAIL_POLICY)
    text = plain_text(issue, templates)
    message.set_content(text, charset="utf-8", cte=body_encoding(text))
    return with_digest_headers(message, issue, templates)


# ---- HTML ------------------------------------------------------------------------------------


def post_html(post: EmailMessage, note: Callable[[EmailMessage], str], footer: str) -> Markup:
    """A post's body as safe HTML: HTML sanitised, text escaped, the rest a note."""
    style = BodyStyle(
        text=lambda s: f'<div style="white-space:pre-wrap">{html.escape(s.strip())}</div>',
        html=sanitize_html,
        omitted=lambda part: f"<p><em>{html.escape(note(part))}</em></p>",
        prefer="text/html",
        footer=footer,
    )
    # Every piece is escaped or sanitised above.
    return Markup("\n".join(readable(post, style)))


def html_digest(issue: Issue, templates: Templates) -> EmailMessage:
    """multipart/alternative: the plain digest, and the same issue as a page for phones."""
    note = omitted_note(templates, issue.mlist.config.language)
    footer = list_footer(templates, issue)
    page = render(
        templates,
        issue,
        "digest.html",
        subject=one_line(render(templates, issue, "digest_subject.txt")),
        masthead=render(templates, issue, "digest_masthead.txt"),
        footer=footer_text(templates, issue),
        bodies=[post_html(post, note, footer) for post in issue.posts],
    )
    message = EmailMessage(policy=MAIL_POLICY)
    message["Content-Type"] = "multipart/alternative"
    message.set_payload([text_part(plain_text(issue, templates)), text_part(page, "html")])
    new_boundary(message)
    return with_digest_headers(message, issue, templates)


# Which builder serves each digest delivery mode of members.
BUILDERS: dict[str, Callable[[Issue, Templates], EmailMessage]] = {
    "digest": mime_digest,
    "plain": plain_digest,
    "html": html_digest,
}
