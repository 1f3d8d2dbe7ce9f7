"""The text a person wrote in a message: its plain-text body, without quotes or signature.

Used to read what a reply says (a moderator's ``approve``) and what a post begins with (a
command sent to the list by mistake). Pure functions of a parsed message.
"""

from __future__ import annotations

import re
from email.message import EmailMessage

from listserv.mail.html_content import html_to_text

# "On Monday, Alice wrote:" — the line a mail client puts above the text it quotes.
ATTRIBUTION = re.compile(r"(wrote|писал|писала|писал\(а\)|пишет|жазды)\s*:\s*$", re.I)


def plain_text(message: EmailMessage) -> str:
    """The readable text of a message: its text/plain part, else its text/html part as
    text (quotes marked ``>``), decoded from the part's charset (UTF-8 when that fails);
    "" when it has neither."""
    try:
        part = message.get_body(preferencelist=("plain", "html"))
    except (LookupError, KeyError, AttributeError):
        return ""
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, KeyError, AssertionError, AttributeError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    return html_to_text(content) if part.get_content_subtype() == "html" else content


def own_lines(text: str) -> list[str]:
    """The lines the writer typed, stripped: quoted lines (``>``) and empty lines are left
    out, and the signature (after ``-- ``) ends the text."""
    lines = []
    for line in text.splitlines():
        if line.rstrip() == "--":
            break
        stripped = line.strip()
        if stripped and not stripped.startswith(">"):
            lines.append(stripped)
    return lines


def first_paragraph(text: str) -> list[str]:
    """The first block of lines the writer typed, up to a blank line, a quote (or the line
    introducing it) or the signature: where a reply's answer is."""
    paragraph: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if paragraph and ATTRIBUTION.search(stripped):
            break
        if line.rstrip() == "--" or stripped.startswith(">") or not stripped:
            if paragraph or line.rstrip() == "--":
                break
            continue
        paragraph.append(stripped)
    return paragraph
