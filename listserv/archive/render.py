"""What an archived post shows: its readable parts (text escaped with quotes folded and links
made clickable, HTML sanitised) and its attachments, numbered from 1 in the order they come.
Everything is derived from the stored bytes, so nothing else has to be kept in step."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

from markupsafe import Markup, escape

from listserv.mail.codec import is_attachment
from listserv.mail.html_content import html_to_text, sanitize_html

ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
ADDRESS_BYTES = re.compile(rb"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
URL = re.compile(r"\bhttps?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")


@dataclass(frozen=True)
class Readable:
    kind: str  # "text" | "html"
    content: str


@dataclass(frozen=True)
class Attachment:
    number: int
    filename: str
    content_type: str
    part: Message

    @property
    def data(self) -> bytes:
        if self.part.get_content_type() == "message/rfc822":
            return self.part.as_bytes()
        payload = self.part.get_payload(decode=True)
        return payload if isinstance(payload, bytes) else b""


def read_post(raw: bytes) -> Message:
    """The stored bytes parsed for showing: the compat32 policy reads header values as they
    are, several times faster than the default one, which pages and search excerpts need
    (threading and indexing parse with the codec's policy)."""
    return BytesParser(policy=compat32).parsebytes(raw)


def decoded(part: Message) -> str:
    """A text part as text, in its declared charset (windows-1251, koi8-r…); bytes an unknown
    or lying charset cannot read are replaced rather than failing the page."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    for charset in (part.get_content_charset() or "utf-8", "utf-8"):
        try:
            return payload.decode(charset)
        except (LookupError, UnicodeError):
            continue
    return payload.decode("utf-8", "replace")


def split_parts(message: Message) -> tuple[list[Readable], list[Attachment]]:
    """The parts a reader sees in the page, and the attachments offered for download."""
    readable: list[Readable] = []
    attachments: list[Attachment] = []

    def visit(part: Message) -> None:
        kind = part.get_content_type()
        if part.is_multipart() and kind != "message/rfc822":
            children = part.get_payload()
            assert isinstance(children, list)
            if kind == "multipart/alternative":
                chosen = choose_alternative(children)
                children = [chosen] if chosen is not None else []
            for child in children:
                visit(child)
            return
        if kind in ("text/plain", "text/html") and not is_attachment(part):
            readable.append(Readable("html" if kind == "text/html" else "text", decoded(part)))
            return
        number = len(attachments) + 1
        name = header_text(part.get_filename() or "") or f"attachment-{number}"
        attachments.append(Attachment(number, safe_filename(name), kind, part))

    visit(message)
    return readable, attachments


def header_text(value: str) -> str:
    """A header value with its RFC 2047 encoded words decoded ("" if they are broken)."""
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return ""


def choose_alternative(children: list[Message]) -> Message | None:
    """The plain text of an alternative, else its last part (the richest)."""
    for child in children:
        if child.get_content_type() == "text/plain":
            return child
    return children[-1] if children else None


def safe_filename(name: str) -> str:
    """A file name usable in a URL path and a download: no directories or control
    characters."""
    cleaned = re.sub(r"[\x00-\x1f/\\]+", "_", name).strip(" .") or "attachment"
    return cleaned[:200]


def text_of(message: Message) -> str:
    """Everything a person reads in the post, as plain text (what the index holds)."""
    readable, attachments = split_parts(message)
    texts = [html_to_text(r.content) if r.kind == "html" else r.content for r in readable]
    return "\n".join(texts + [a.filename for a in attachments])


def hide_addresses(text: str) -> str:
    return ADDRESS.sub(lambda m: obfuscate(m.group(0)), text)


def hide_addresses_in_bytes(raw: bytes) -> bytes:
    return ADDRESS_BYTES.sub(lambda m: obfuscate(m.group(0).decode()).encode(), raw)


def obfuscate(address: str) -> str:
    """``alice@example.com`` → ``a…@e….com``: enough to tell posters apart, not to write to."""
    local, _, domain = address.partition("@")
    if not domain:
        return local[:1] + "…"
    head, dot, tld = domain.rpartition(".")
    shown_domain = f"{head[:1]}…{dot}{tld}" if dot else f"{domain[:1]}…"
    return f"{local[:1]}…@{shown_domain}"


def render_text(text: str, show_addresses: bool) -> Markup:
    """A text part as HTML: escaped, links clickable, quoted lines folded into a <details>
    (opens without JavaScript)."""
    if not show_addresses:
        text = hide_addresses(text)
    html: list[str] = []
    quoted: list[str] = []

    def flush_quote() -> None:
        if quoted:
            html.append(
                '<details class="quote"><summary>&gt; …</summary><blockquote>'
                + "\n".join(quoted)
                + "</blockquote></details>"
            )
            quoted.clear()

    for line in text.splitlines():
        rendered = linked(line)
        if line.lstrip().startswith(">"):
            quoted.append(rendered)
        else:
            flush_quote()
            html.append(rendered)
    flush_quote()
    return Markup('<pre class="body">' + "\n".join(html) + "</pre>")


def linked(line: str) -> str:
    """One escaped line with its web addresses as links."""
    out: list[str] = []
    position = 0
    for match in URL.finditer(line):
        out.append(str(escape(line[position : match.start()])))
        url = escape(match.group(0))
        out.append(f'<a href="{url}" rel="nofollow noopener">{url}</a>')
        position = match.end()
    out.append(str(escape(line[position:])))
    return "".join(out)


def render_html(source: str, show_addresses: bool) -> Markup:
    cleaned = sanitize_html(source)
    return Markup(cleaned if show_addresses else hide_addresses(cleaned))


def render_readable(parts: list[Readable], show_addresses: bool) -> list[Markup]:
    return [
        render_html(p.content, show_addresses)
        if p.kind == "html"
        else render_text(p.content, show_addresses)
        for p in parts
    ]
