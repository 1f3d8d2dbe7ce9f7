"""Limits on what one message may carry, checked at DATA before it is stored.

Python's ``email`` header parser takes time quadratic in a header's length (a 1.2 MB ``To``
took 21 s), and every stage after intake parses headers, so an oversized header block would
stall routing for every list. Mail with a header block over ``[server] max_header_size``, or
a single header field over ``max_header_field_size``, is refused at DATA with 552: real mail
has a few kilobytes of headers (Postfix's own limit on the whole block is 100 KB).
"""

from __future__ import annotations

import re

# The end of the header block: the first empty line (bare LF tolerated).
HEADER_END = re.compile(rb"\r?\n\r?\n")


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
