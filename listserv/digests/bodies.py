"""A post's body made readable in a digest: text shown, HTML converted or sanitised,
anything else (images, attachments) replaced by a one-line note. ``plain`` and ``html`` each
give a :class:`BodyStyle`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage

from listserv.mail.codec import MAIL_POLICY, is_attachment
from listserv.mail.templates import Templates, one_line


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
