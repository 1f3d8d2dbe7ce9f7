"""Pure transformations of a post on its way to the members: list headers, subject prefix,
Reply-To and footer. Each takes a message and returns nothing but the changed message; none
does I/O, so they are tested on plain messages.
"""

from __future__ import annotations

import copy
import re
import secrets
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser

from .lists import MailList

# Source headers are kept exactly as the sender wrote them; headers we add are folded.
MAIL_POLICY = policy.SMTP.clone(refold_source="none")
# Headers from the sender that would mislead members or leak a moderator's password.
STRIPPED = (
    "Approved",
    "Approve",
    "Return-Path",
    "Return-Receipt-To",
    "Disposition-Notification-To",
    "X-Confirm-Reading-To",
    "X-PMRQC",
    "Precedence",
    "List-Id",
    "List-Post",
    "List-Help",
    "List-Subscribe",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Archive",
    "List-Owner",
)
REPLY_MARKERS = re.compile(r"^\s*((re|fwd?|aw|sv|ответ|отв|на)\s*(\[\d+\])?\s*:\s*)+", re.I)


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=MAIL_POLICY).parsebytes(raw)  # type: ignore[return-value]


def to_bytes(message: Message) -> bytes:
    return message.as_bytes(policy=MAIL_POLICY)


def subject_of(message: Message) -> str:
    """The decoded Subject, or "" when absent or undecodable."""
    try:
        return str(message.get("Subject", "") or "")
    except (ValueError, LookupError):
        return ""


def prefixed_subject(subject: str, prefix: str) -> str:
    """``[list] subject`` with the prefix once, ahead of any ``Re:``, never stacked."""
    bare = prefix.strip()
    if not bare:
        return subject
    rest = subject.replace(bare, "") if bare in subject else subject
    rest = re.sub(r"\s+", " ", rest).strip()
    match = REPLY_MARKERS.match(rest)
    if match:
        rest = "Re: " + REPLY_MARKERS.sub("", rest).strip()
    return f"{bare} {rest}".strip() if rest else bare


def set_header(message: Message, name: str, value: str) -> None:
    del message[name]
    message[name] = value


def add_subject_prefix(message: Message, prefix: str) -> None:
    set_header(message, "Subject", prefixed_subject(subject_of(message), prefix))


def add_list_headers(message: Message, mlist: MailList, unsubscribe_url: str = "") -> None:
    """RFC 2369 and RFC 2919 headers, Precedence and the loop marker."""
    for name in STRIPPED:
        del message[name]
    post = "NO" if mlist.config.posting == "announce" else f"<mailto:{mlist.address()}>"
    request = mlist.address("request")
    title = mlist.config.title.replace('"', "'")
    message["List-Id"] = f'"{title}" <{mlist.list_id}>' if title else f"<{mlist.list_id}>"
    message["List-Post"] = post
    message["List-Help"] = f"<mailto:{request}?subject=help>"
    message["List-Subscribe"] = f"<mailto:{mlist.address('join')}>"
    unsubscribe = f"<mailto:{mlist.address('leave')}>"
    if unsubscribe_url:
        message["List-Unsubscribe"] = f"<{unsubscribe_url}>, {unsubscribe}"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    else:
        message["List-Unsubscribe"] = unsubscribe
    message["List-Owner"] = f"<mailto:{mlist.address('owner')}>"
    message["Precedence"] = "list"
    message["X-BeenThere"] = mlist.address()


def set_reply_to(message: Message, mlist: MailList) -> None:
    if mlist.config.reply_to == "list":
        set_header(message, "Reply-To", mlist.address())


def already_seen(message: Message, mlist: MailList) -> bool:
    """True when this list already distributed the message (a mail loop)."""
    marker = mlist.address().lower()
    if any(str(v).strip().lower() == marker for v in message.get_all("X-BeenThere", [])):
        return True
    list_id = f"<{mlist.list_id}>"
    return any(list_id in str(v).lower() for v in message.get_all("List-Id", []))


def add_footer(message: EmailMessage, footer: str) -> None:
    """Append *footer* to a plain-text body in its own charset, else as a separate part.

    A single text/plain part whose charset can carry the footer keeps its charset and
    transfer encoding; anything else becomes multipart/mixed with the footer as a last
    part, so signed, HTML and multipart bodies reach members byte-for-byte intact.
    """
    if not footer.strip():
        return
    if message.get_content_type() == "text/plain" and not message.is_multipart():
        charset = message.get_content_charset() or "us-ascii"
        cte = str(message.get("Content-Transfer-Encoding", "7bit")).lower()
        try:
            body = message.get_content()
            joined = body if body.endswith("\n") else body + "\n"
            joined += "\n" + footer
            joined.encode(charset)
        except (LookupError, UnicodeError, KeyError):
            pass
        else:
            if cte == "7bit" and not joined.isascii():
                cte = "8bit"
            params = {k: v for k, v in message.get_params([])[1:] if k != "charset"}
            message.set_content(joined, charset=charset, cte=cte, params=params)
            return
    if message.get_content_type() == "multipart/mixed":
        message.add_attachment(footer, disposition="inline", charset="utf-8", cte="8bit")
        del message.get_payload()[-1]["Content-Disposition"]
        return
    wrap_with_footer(message, footer)


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
