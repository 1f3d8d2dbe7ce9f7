"""Writing header values safely: on one line, and RFC 2047-encoded without losing spaces;
recognising reply markers in subjects."""

from __future__ import annotations

import re
from email.header import Header
from email.message import Message

# Reply markers of mail clients in the languages of our members ("Re[2]:", German "AW:",
# Russian "Ответ:"/"Отв:", Kazakh "Жауап:"); a run of them becomes one "Re:". Forwarding
# markers ("Fwd:") are kept: the post is not a reply.
REPLY_MARKERS = re.compile(
    r"^((re|aw|sv|vs|antw|ответ|отв|жауап)\s*([\[(]\d+[\])])?\s*:\s*)+", re.I
)
# Reply and forwarding markers alike: what to skip to reach the words a person wrote.
RESPONSE_MARKERS = re.compile(
    r"^((re|fwd?|aw|wg|sv|vs|antw|ответ|отв|пересл|жауап)\s*([\[(]\d+[\])])?\s*:\s*)+", re.I
)


# Headers of autoresponders that do not use RFC 3834's Auto-Submitted (older vacation
# programs, Exchange and Outlook): present at all, they mark the mail as written by a machine.
AUTORESPONDER_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")


def marked_automatic(message: Message) -> bool:
    """The message says it was written by a machine: ``Auto-Submitted`` other than ``no``
    (RFC 3834), or an autoresponder's own header."""
    auto = one_line(str(message.get("Auto-Submitted", "no"))).lower()
    return auto not in ("", "no") or any(name in message for name in AUTORESPONDER_HEADERS)


def one_line(text: str) -> str:
    """Fold any line breaks a value carries into spaces, so it cannot add a header."""
    return re.sub(r"\s+", " ", text).strip()


def set_subject(message: Message, subject: str) -> None:
    """Set a one-line Subject, RFC 2047-encoding what is not ASCII.

    Non-ASCII subjects are encoded here rather than by the email package, whose folder
    (CPython 3.11-3.12) drops the space between words that fall into two encoded words, so
    long Cyrillic subjects (and List-Id titles) reached members with words run together.
    The ASCII head (the prefix, "Re:") stays readable to filters.
    """
    del message["Subject"]
    if subject.isascii():
        message["Subject"] = subject
        return
    words = subject.split(" ")
    ascii_words = next((i for i, w in enumerate(words) if not w.isascii()), len(words))
    header = Header(header_name="Subject")
    if ascii_words:
        header.append(" ".join(words[:ascii_words]), "us-ascii")
    header.append(" ".join(words[ascii_words:]), "utf-8")
    message.set_raw("Subject", header.encode())


def set_header(message: Message, name: str, value: str) -> None:
    del message[name]
    message[name] = value
