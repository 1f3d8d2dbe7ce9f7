"""The headers that make a message list mail (RFC 2369, RFC 2919, Precedence, the loop
marker), added to posts, digests and notices alike, and the test that a message already went
through a list."""

from __future__ import annotations

from email.header import Header
from email.message import Message
from functools import lru_cache
from typing import Protocol

from listserv.mail.codec import MAIL_POLICY
from listserv.mail.headers import one_line


class ListSettings(Protocol):
    title: str
    posting: str


class ListIdentity(Protocol):
    """What these headers need to know of a list (``store.lists.MailList`` is one)."""

    @property
    def config(self) -> ListSettings: ...

    @property
    def list_id(self) -> str: ...

    def address(self, role: str = "post", detail: str = "") -> str: ...


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


def add_list_headers(message: Message, mlist: ListIdentity, unsubscribe_url: str = "") -> None:
    """RFC 2369 and RFC 2919 headers, Precedence and the loop marker."""
    for name in STRIPPED:
        del message[name]
    post = "NO" if mlist.config.posting == "announce" else f"<mailto:{mlist.address()}>"
    roles = ("request", "join", "leave", "owner")
    headers = list_headers(
        mlist.config.title,
        mlist.list_id,
        post,
        *(mlist.address(role) for role in roles),
        mlist.address(),
        unsubscribe_url,
    )
    # A message of the codec's policy takes the values as written out (see list_headers).
    folded = message.policy is MAIL_POLICY
    for name, value, written in headers:
        if written is not None and (folded or value is None):
            message.set_raw(name, written)
        else:
            message[name] = value


@lru_cache(maxsize=256)
def list_headers(
    title: str,
    list_id: str,
    post: str,
    request: str,
    join: str,
    leave: str,
    owner: str,
    address: str,
    unsubscribe_url: str,
) -> tuple[tuple[str, str | None, str | None], ...]:
    """Name, value and the value as the codec writes it (folded) of each header, once per
    list: the header registry parses a value each time it is set and folds it again each
    time the message is written, for the same few values on every post. The value is None
    for a header only ever set as written; the value as written is None for one that must
    be set as a value."""
    title = one_line(title.replace('"', "'").replace("\\", ""))
    if title.isascii():
        list_header = f'"{title}" <{list_id}>' if title else f"<{list_id}>"
        headers = [("List-Id", list_header, written_value("List-Id", list_header))]
    else:
        # An encoded-word phrase (RFC 2919, 2047), encoded here: see set_subject.
        phrase = Header(title, "utf-8", header_name="List-Id").encode()
        headers = [("List-Id", None, f"{phrase} <{list_id}>")]
    values = [
        ("List-Post", post),
        ("List-Help", f"<mailto:{request}?subject=help>"),
        ("List-Subscribe", f"<mailto:{join}>"),
    ]
    unsubscribe = f"<mailto:{leave}>"
    if unsubscribe_url:
        values.append(("List-Unsubscribe", f"<{unsubscribe_url}>, {unsubscribe}"))
        values.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    else:
        values.append(("List-Unsubscribe", unsubscribe))
    values += [
        ("List-Owner", f"<mailto:{owner}>"),
        ("Precedence", "list"),
        ("X-BeenThere", address),
    ]
    headers += [(name, value, written_value(name, value)) for name, value in values]
    return tuple(headers)


def written_value(name: str, value: str) -> str | None:
    """*value* as the codec folds it when it writes the header out; None when that begins
    on a line of its own, which a value set as written cannot do."""
    folded = MAIL_POLICY.fold(name, MAIL_POLICY.header_store_parse(name, value)[1])
    start = f"{name}: "
    if not folded.startswith(start) or folded.startswith(start + MAIL_POLICY.linesep):
        return None
    return folded[len(start) : -len(MAIL_POLICY.linesep)]


def already_seen(message: Message, mlist: ListIdentity) -> bool:
    """True when this list already distributed the message (a mail loop)."""
    marker = mlist.address().lower()
    if any(str(v).strip().lower() == marker for v in message.get_all("X-BeenThere", [])):
        return True
    list_id = f"<{mlist.list_id}>"
    return any(list_id in str(v).lower() for v in message.get_all("List-Id", []))
