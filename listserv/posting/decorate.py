"""Pure transformations of a post on its way to the members: list headers, subject prefix,
Reply-To and footer. Each takes a message and returns nothing but the changed message; none
does I/O, so they are tested on plain messages.
"""

from __future__ import annotations

import copy
import re
import secrets
from email import policy
from email.header import Header
from email.message import EmailMessage, Message
from email.parser import BytesParser

from listserv.mail.headers import one_line, set_subject
from listserv.store.lists import MailList

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


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=MAIL_POLICY).parsebytes(raw)  # type: ignore[return-value]


def to_bytes(message: Message) -> bytes:
    return message.as_bytes(policy=MAIL_POLICY)


def subject_of(message: Message) -> str:
    """The decoded Subject, or "" when absent or undecodable.

    A Subject written as raw 8-bit bytes (old clients in windows-1251 or KOI8-R) is read in
    UTF-8, else in the charset of the body, which such clients write in the same charset.
    """
    raw = next((v for k, v in message.raw_items() if k.lower() == "subject"), None)
    data = undecoded_bytes(raw)
    if data:
        for charset in ("utf-8", body_charset(message)):
            try:
                return one_line(data.decode(charset))
            except (LookupError, UnicodeError):
                continue
    try:
        return str(message.get("Subject", "") or "")
    except (ValueError, LookupError):
        return ""


def undecoded_bytes(value: object) -> bytes:
    """The raw 8-bit bytes a parsed header value carries, b"" when it carries none (plain
    ASCII, or text set by the program)."""
    if not isinstance(value, str) or value.isascii():
        return b""
    try:
        return value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return b""


def body_charset(message: Message) -> str:
    """The charset of the first text part, "" when none is named."""
    for part in message.walk():
        if part.get_content_maintype() == "text":
            return part.get_content_charset() or ""
    return ""


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


def set_header(message: Message, name: str, value: str) -> None:
    del message[name]
    message[name] = value


def add_subject_prefix(message: Message, prefix: str) -> None:
    set_subject(message, prefixed_subject(subject_of(message), prefix))


def add_list_headers(message: Message, mlist: MailList, unsubscribe_url: str = "") -> None:
    """RFC 2369 and RFC 2919 headers, Precedence and the loop marker."""
    for name in STRIPPED:
        del message[name]
    post = "NO" if mlist.config.posting == "announce" else f"<mailto:{mlist.address()}>"
    request = mlist.address("request")
    title = one_line(mlist.config.title.replace('"', "'").replace("\\", ""))
    if title.isascii():
        message["List-Id"] = f'"{title}" <{mlist.list_id}>' if title else f"<{mlist.list_id}>"
    else:
        # An encoded-word phrase (RFC 2919, 2047), encoded here: see set_subject.
        phrase = Header(title, "utf-8", header_name="List-Id").encode()
        message.set_raw("List-Id", f"{phrase} <{mlist.list_id}>")
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
        joined = (body if body.endswith("\n") else body + "\n") + "\n" + footer
        joined.encode(charset)
    except (LookupError, UnicodeError):
        return False
    if charset == "utf-8" and declared != charset and joined.isascii():
        charset = "us-ascii"
    if cte == "7bit" and not joined.isascii():
        cte = "8bit"
    params = {k: v for k, v in message.get_params([])[1:] if k != "charset"}
    message.set_content(joined, charset=charset, cte=cte, params=params)
    return True


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
