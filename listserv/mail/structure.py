"""How deeply a message's MIME parts nest. Mail from people nests a few levels (a forward of
a forward with attachments); hundreds of levels only make the parsers and serialisers that
walk it recursively fail later, after the message was accepted. Intake refuses such mail.
"""

from __future__ import annotations

import re
from email.message import Message

from listserv.mail.codec import parse

MAX_MIME_DEPTH = 50
CONTENT_TYPE = re.compile(rb"(?i)content-type")


def too_deeply_nested(raw: bytes) -> bool:
    # Each level has its own Content-Type: most mail is cleared without being parsed.
    if len(CONTENT_TYPE.findall(raw)) <= MAX_MIME_DEPTH:
        return False
    try:
        return mime_depth(parse(raw)) > MAX_MIME_DEPTH
    except RecursionError:
        return True


def mime_depth(message: Message) -> int:
    """Levels of parts, the message itself being 1 (walked without recursion)."""
    deepest, stack = 0, [(message, 1)]
    while stack:
        part, depth = stack.pop()
        deepest = max(deepest, depth)
        if part.is_multipart():
            stack.extend((sub, depth + 1) for sub in part.get_payload())  # type: ignore[union-attr]
    return deepest
