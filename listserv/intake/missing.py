"""Headers every message needs before it is stored: ``Message-ID`` and ``Date``.

RFC 5322 requires ``Date`` and expects ``Message-ID``; Gmail refuses mail without them, so a
post that lacks one would be refused at every member's Gmail. Intake adds what is missing, on
top, the way a submission server does (RFC 6409 8.2, 8.3).
"""

from __future__ import annotations

from email.utils import formatdate, make_msgid

from listserv.intake.limits import HEADER_END


def field_names(raw: bytes) -> set[bytes]:
    """The lower-cased names of the header fields of *raw*."""
    end = HEADER_END.search(raw)
    head = raw[: end.start()] if end else raw
    return {
        line.partition(b":")[0].strip().lower()
        for line in head.split(b"\n")
        if line[:1] not in (b" ", b"\t") and b":" in line
    }


def with_required_headers(raw: bytes, domain: str) -> bytes:
    names = field_names(raw)
    added = b""
    if b"message-id" not in names:
        added += f"Message-ID: {make_msgid(domain=domain)}\r\n".encode("ascii")
    if b"date" not in names:
        added += f"Date: {formatdate(localtime=False)}\r\n".encode("ascii")
    return added + raw
