"""Limits on what one message may carry, checked at DATA before it is stored.

MIME nesting deeper than ``MAX_MIME_DEPTH`` is refused with 554: read by a linear scan of the
boundaries, never by the recursive parser it protects.

Python's ``email`` header parser takes time quadratic in a header's length (a 1.2 MB ``To``
took 21 s), and every stage after intake parses headers, so an oversized header block would
stall routing for every list. Mail with a header block over ``[server] max_header_size``, or
a single header field over ``max_header_field_size``, is refused at DATA with 552: real mail
has a few kilobytes of headers (Postfix's own limit on the whole block is 100 KB).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from listserv.config import ServerConfig

# The end of the header block: the first empty line (bare LF tolerated).
HEADER_END = re.compile(rb"\r?\n\r?\n")
# MIME containers inside each other (multipart, message/rfc822) a message may have. Python's
# email package recurses per level and fails past about 200 with RecursionError — after the
# 250, when the post is decorated; Postfix's own default limit is 100.
MAX_MIME_DEPTH = 50
CONTENT_TYPE = re.compile(rb"^content-type\s*:\s*([a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+)", re.I)
BOUNDARY = re.compile(rb"""boundary\s*=\s*(?:"([^"]*)"|([^;\s]+))""", re.I)


def refusal(raw: bytes, server: ServerConfig) -> str | None:
    """The reply refusing *raw* at DATA, or None when intake may store it."""
    if len(raw) > server.max_message_size:
        return "552 5.3.4 Message too big"
    problem = header_problem(raw, server.max_header_size, server.max_header_field_size)
    if problem is None and mime_depth_exceeds(raw):
        problem = f"554 5.6.0 MIME parts nested too deep (over {MAX_MIME_DEPTH} levels)"
    return problem


def header_problem(raw: bytes, max_block: int, max_field: int) -> str | None:
    """Why the header block of *raw* is refused, or None when it is within the limits. Reads
    each byte at most twice: it must stay cheap for any input."""
    end = HEADER_END.search(raw, 0, max_block + 4)
    block_size = end.start() if end else len(raw)
    if block_size > max_block:
        return f"552 5.3.4 Message header too large (over {max_block} bytes)"
    name, field_size = b"", 0
    for line in raw[:block_size].split(b"\n"):
        # A line starting with white space continues the field above (RFC 5322 folding).
        if line[:1] in (b" ", b"\t"):
            field_size += len(line) + 1
        else:
            name, field_size = line.partition(b":")[0][:40], len(line) + 1
        if field_size > max_field:
            shown = name.decode("ascii", "replace")
            return f"552 5.3.4 Header field {shown} too large (over {max_field} bytes)"
    return None


@dataclass
class Container:
    boundary: bytes  # b"" for a message/rfc822 part, closed with its enclosing part
    digest: bool = False  # multipart/digest: a part without Content-Type is a message


def _container(content_type: bytes, in_digest: bool) -> Container | None:
    """The container a part of this Content-Type field opens, if any."""
    found = CONTENT_TYPE.match(content_type)
    kind = found.group(1).lower() if found else (b"message/rfc822" if in_digest else b"")
    if kind.startswith(b"multipart/"):
        boundary = BOUNDARY.search(content_type)
        if boundary:
            value = boundary.group(1) if boundary.group(1) is not None else boundary.group(2)
            return Container(value, kind == b"multipart/digest") if value else None
    elif kind in (b"message/rfc822", b"message/global"):
        return Container(b"")
    return None


def mime_depth_exceeds(raw: bytes, limit: int = MAX_MIME_DEPTH) -> bool:
    """Whether MIME containers in *raw* nest deeper than *limit*: one pass over its lines,
    following the boundaries as the parser would (the innermost match wins)."""
    stack: list[Container] = []
    in_head, field, content_type = True, b"", b""
    for line in raw.split(b"\n"):
        line = line.rstrip(b"\r")
        if in_head:
            if line[:1] in (b" ", b"\t"):
                field += line
                continue
            if field.lower().startswith(b"content-type"):
                content_type = field
            field = line
            if line:
                continue
            opened = _container(content_type, bool(stack) and stack[-1].digest)
            field = content_type = b""
            if opened is not None:
                stack.append(opened)
                if len(stack) > limit:
                    return True
            # The body of a message/rfc822 part is a message: its head comes next.
            in_head = opened is not None and not opened.boundary
            continue
        if not line.startswith(b"--"):
            continue
        for i in range(len(stack) - 1, -1, -1):
            boundary = stack[i].boundary
            if boundary and line.startswith(b"--" + boundary):
                closing = line[2 + len(boundary) :].startswith(b"--")
                del stack[i if closing else i + 1 :]
                in_head = not closing
                break
    return False
