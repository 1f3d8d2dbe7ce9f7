"""Pure transformations of a post on its way to the members: subject prefix, Reply-To and
footer (the list headers are ``mail.list_headers``). Each takes a message and returns nothing
but the changed message; none does I/O, so they are tested on plain messages.
"""

from __future__ import annotations

import copy
import re
import secrets
from email.message import EmailMessage, Message

from listserv.mail.codec import MAIL_POLICY, subject_of
from listserv.mail.headers import REPLY_MARKERS, one_line, set_header, set_subject
from listserv.store.lists import MailList


def prefixed_subject(subject: str, prefix: str) -> str:
    """``[list] subject`` with the prefix once, ahead of any ``Re:``, never stacked.

    The result is always one line: a subject whose encoded words carry CR or LF cannot
    smuggle in a header.
    """
    bare = one_line(prefix)
    rest = re.sub(re.escape(bare), " ", subject, flags=re.I) if bare else subject
    rest = one_line(rest)
    if REPLY_MARKERS.match(rest):
        rest = "Re: " + REPLY_MARKERS.sub("", rest)
    return f"{bare} {rest}".strip()


def add_subject_prefix(message: Message, prefix: str) -> None:
    set_subject(message, prefixed_subject(subject_of(message), prefix))


def set_reply_to(message: Message, mlist: MailList) -> None:
    if mlist.config.reply_to == "list":
        set_header(message, "Reply-To", mlist.address())


def add_footer(message: EmailMessage, footer: str) -> None:
    """Append *footer* to a plain-text body in its own charset, else as a separate part.

    A single text/plain body that decodes without loss in a charset that can carry the
    footer keeps its charset and transfer encoding; anything else becomes multipart/mixed
    with the footer as a last part, so signed, HTML, multipart and undecodable bodies reach
    members byte-for-byte intact.
    """
    if not footer.strip() or append_to_text(message, footer):
        return
    # A multipart without a usable boundary parses as text; it is wrapped like one.
    if message.get_content_type() == "multipart/mixed" and isinstance(message.get_payload(), list):
        message.add_attachment(footer, disposition="inline", charset="utf-8", cte="8bit")
        del message.get_payload()[-1]["Content-Disposition"]
        return
    wrap_with_footer(message, footer)


def append_to_text(message: EmailMessage, footer: str) -> bool:
    """Add *footer* inside a single text/plain body; False when that would lose anything."""
    if (
        message.get_content_type() != "text/plain"
        or message.is_multipart()
        or message.get_content_disposition() == "attachment"
    ):
        return False
    cte = str(message.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    if cte not in ("7bit", "8bit", "quoted-printable", "base64"):
        return False
    declared = message.get_content_charset() or "us-ascii"
    # 8-bit text in mail that names no charset (or us-ascii) is UTF-8 in practice, and
    # ASCII is a subset of it: such a body may take a UTF-8 footer.
    charset = "utf-8" if declared in ("us-ascii", "ascii") else declared
    try:
        body = message.get_payload(decode=True).decode(charset)
    except (LookupError, UnicodeError):
        return False
    joined = in_charset((body if body.endswith("\n") else body + "\n") + "\n", footer, charset)
    if joined is None:
        return False
    if charset == "utf-8" and declared != charset and joined.isascii():
        charset = "us-ascii"
    if cte == "7bit" and not joined.isascii():
        cte = "8bit"
    params = {k: v for k, v in message.get_params([])[1:] if k != "charset"}
    message.set_content(joined, charset=charset, cte=cte, params=params)
    return True


# Typographic marks the footers use that a legacy Cyrillic charset (KOI8-R) lacks, and the
# plain forms that keep a footer inside such a body rather than in a part of its own.
PLAIN_MARKS = str.maketrans({"«": '"', "»": '"', "„": '"', "“": '"', "—": "-", "–": "-"})


def in_charset(body: str, footer: str, charset: str) -> str | None:
    """*body* and *footer* joined, when *charset* can carry them (the footer's quotes and
    dashes made plain if need be); None when it cannot."""
    for shown in (footer, footer.translate(PLAIN_MARKS)):
        try:
            (body + shown).encode(charset)
        except (LookupError, UnicodeError):
            continue
        return body + shown
    return None


def wrap_with_footer(message: EmailMessage, footer: str) -> None:
    """Turn the message into multipart/mixed: [original body, footer]."""
    # A deep copy keeps the body exactly as received (8-bit bytes included), which
    # get_payload() would decode and re-encode.
    body = copy.deepcopy(message)
    for name in set(message.keys()):
        if name.lower().startswith("content-"):
            del message[name]
        else:
            del body[name]
    part = EmailMessage(policy=MAIL_POLICY)
    part.set_content(footer, charset="utf-8", cte="8bit")
    del part["MIME-Version"]
    message.set_payload([body, part])
    message["Content-Type"] = "multipart/mixed"
    message.set_boundary("===listserv-" + secrets.token_hex(12))
    if "MIME-Version" not in message:
        message["MIME-Version"] = "1.0"
