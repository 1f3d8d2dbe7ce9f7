"""Reading digests the way a member's mail client (or an RFC 1153 burster) does."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage

PREAMBLE_END = "\n" + "-" * 70 + "\n\n"
MESSAGE_END = "\n\n" + "-" * 30 + "\n\n"


@dataclass
class Rfc1153:
    preamble: str
    messages: list[tuple[dict[str, str], str]]
    trailer: str


def burst(text: str) -> Rfc1153:
    """Split an RFC 1153 digest into its preamble, messages (headers, body) and trailer."""
    text = text.replace("\r\n", "\n")
    assert text.count(PREAMBLE_END) == 1, "one line of 70 hyphens ends the preamble"
    preamble, rest = text.split(PREAMBLE_END)
    *chunks, trailer = rest.split(MESSAGE_END)
    messages = []
    for chunk in chunks:
        head, _, body = chunk.partition("\n\n")
        headers = dict(line.split(": ", 1) for line in head.splitlines())
        messages.append((headers, body))
    return Rfc1153(preamble, messages, trailer)


def digest_parts(message: EmailMessage) -> tuple[str, list[EmailMessage], str]:
    """The front text, the posts and the footer text of a MIME digest."""
    assert message.get_content_type() == "multipart/mixed"
    front, digest, footer = message.iter_parts()
    assert front.get_content_type() == "text/plain"
    assert digest.get_content_type() == "multipart/digest"
    posts = []
    for part in digest.iter_parts():
        assert part.get_content_type() == "message/rfc822"
        (post,) = part.iter_parts()
        posts.append(post)
    return lines(front.get_content()), posts, lines(footer.get_content())


def html_and_text(message: EmailMessage) -> tuple[str, str]:
    assert message.get_content_type() == "multipart/alternative"
    text, page = message.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert page.get_content_type() == "text/html"
    return lines(page.get_content()), lines(text.get_content())


def lines(text: str) -> str:
    """Text with the line ends a mail client shows (SMTP carries CRLF)."""
    return text.replace("\r\n", "\n")
