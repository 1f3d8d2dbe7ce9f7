"""The message codec: bytes to ``EmailMessage`` and back, and reading what a sender wrote.

Every stage parses and serialises with the one policy here, so source headers travel exactly as
the sender wrote them.
"""

from __future__ import annotations

from email import policy
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, Message
from email.parser import BytesParser
from functools import lru_cache

from listserv.mail.headers import one_line


class HeaderClasses(HeaderRegistry):
    """The email package's registry, but for the class it makes each time a header is read
    or set (some fourteen a post): made once per kind of header, as that is all it depends
    on."""

    def __init__(self) -> None:
        super().__init__()
        self.made: dict[type, type] = {}

    def __getitem__(self, name: str) -> type:
        kind = self.registry.get(name.lower(), self.default_class)
        made = self.made.get(kind)
        if made is None:
            made = self.made[kind] = super().__getitem__(name)
        return made


# Source headers are kept exactly as the sender wrote them; headers we add are folded.
MAIL_POLICY = policy.SMTP.clone(refold_source="none", header_factory=HeaderClasses())


def parse(raw: bytes) -> EmailMessage:
    message: EmailMessage = BytesParser(policy=MAIL_POLICY).parsebytes(raw)  # type: ignore[assignment]
    for part in message.walk():
        # A multipart whose boundary never comes parses as one string, which the generator
        # cannot write back when it carries 8-bit bytes (found by fuzz/run.py): it is read
        # as the text it is, byte for byte.
        if part.get_content_maintype() == "multipart" and not part.is_multipart():
            part.replace_header("Content-Type", "text/plain")
    return message


def parse_headers(raw: bytes) -> EmailMessage:
    """The header fields of *raw*, its body left unread: all that checking a sender needs."""
    return BytesParser(policy=MAIL_POLICY).parsebytes(raw, headersonly=True)  # type: ignore[return-value]


def to_bytes(message: Message) -> bytes:
    return message.as_bytes(policy=MAIL_POLICY)


def subject_of(message: Message) -> str:
    """The decoded Subject on one line, or "" when absent or undecodable.

    A Subject written as raw 8-bit bytes (old clients in windows-1251 or KOI8-R) is read in
    UTF-8, else in the charset of the body, which such clients write in the same charset.
    """
    raw = next((v for k, v in message.raw_items() if k.lower() == "subject"), None)
    written = eight_bit_text(message, raw)
    if written is not None:
        return one_line(written)
    if isinstance(raw, str):
        return decoded_subject(raw)
    try:
        return one_line(str(raw or ""))
    except (ValueError, LookupError):
        return ""


# Replies repeat their thread's Subject, and the header registry makes a class at each
# reading (a tenth of what archiving a post costs): each written Subject is read once.
@lru_cache(maxsize=4096)
def decoded_subject(raw: str) -> str:
    try:
        # One line: RFC 2047 words may decode to CR and LF, which would otherwise write
        # headers (or a body) into every template that shows the subject. Read by this
        # policy whatever parsed the message (the archive parses posts with compat32).
        return one_line(str(MAIL_POLICY.header_fetch_parse("Subject", raw)))
    except (ValueError, LookupError):
        return ""


def raw_values(message: Message, *names: str) -> list[str]:
    """The values of the named header fields as received, unparsed: reading them through the
    header registry takes time quadratic in their length."""
    wanted = {name.lower() for name in names}
    return [str(value) for key, value in message.raw_items() if key.lower() in wanted]


def undecoded_bytes(value: object) -> bytes:
    """The raw 8-bit bytes a parsed header value carries, b"" when it carries none (plain
    ASCII, or text set by the program)."""
    if not isinstance(value, str) or value.isascii():
        return b""
    try:
        return value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return b""


def eight_bit_text(message: Message, value: object) -> str | None:
    """A header value written as raw 8-bit bytes, read as text: in UTF-8, else in the
    charset of the body (old clients write both in windows-1251 or KOI8-R), else with the
    unreadable bytes replaced; None when the value carries no such bytes."""
    data = undecoded_bytes(value)
    if not data:
        return None
    for charset in ("utf-8", body_charset(message)):
        try:
            return data.decode(charset)
        except (LookupError, UnicodeError):
            continue
    return data.decode("utf-8", "replace")


def body_charset(message: Message) -> str:
    """The charset of the first text part, "" when none is named."""
    for part in message.walk():
        if part.get_content_maintype() == "text":
            return part.get_content_charset() or ""
    return ""


def is_attachment(part: Message) -> bool:
    """A part its sender marked as an attachment (rather than inline)."""
    return str(part.get("Content-Disposition", "") or "").strip().lower().startswith("attachment")
