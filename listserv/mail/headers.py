"""Writing header values safely: on one line, and RFC 2047-encoded without losing spaces."""

from __future__ import annotations

import re
from email.header import Header
from email.message import Message


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
