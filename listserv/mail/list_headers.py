"""The headers that make a message list mail (RFC 2369, RFC 2919, Precedence, the loop
marker), added to posts, digests and notices alike, and the test that a message already went
through a list."""

from __future__ import annotations

from email.header import Header
from email.message import Message
from typing import Protocol

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


def already_seen(message: Message, mlist: ListIdentity) -> bool:
    """True when this list already distributed the message (a mail loop)."""
    marker = mlist.address().lower()
    if any(str(v).strip().lower() == marker for v in message.get_all("X-BeenThere", [])):
        return True
    list_id = f"<{mlist.list_id}>"
    return any(list_id in str(v).lower() for v in message.get_all("List-Id", []))
