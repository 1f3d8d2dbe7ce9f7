"""The ``-owner`` address: mail to a list's owners is forwarded to them, with a loop guard
so two list servers whose owners are each other's lists never pass mail back and forth."""

from __future__ import annotations

from email.message import Message as Mail
from email.utils import parseaddr

from sqlalchemy.orm import Session

from listserv.app import App
from listserv.auth.authentication import authenticate_stored, prepend, stamp
from listserv.delivery.outbound import send
from listserv.mail.codec import parse
from listserv.mail.headers import one_line
from listserv.store.lists import MailList
from listserv.store.models import InboxMessage

# Names the list address a message was forwarded from, as Mailman does: mail coming back to
# an address it names has gone round a loop.
BEEN_THERE = "X-BeenThere"


def been_there(message: Mail, address: str) -> bool:
    return any(
        parseaddr(str(value))[1].lower() == address for value in message.get_all(BEEN_THERE, [])
    )


def auto_generated(message: Mail, envelope_sender: str) -> bool:
    """A bounce or an automatic reply (RFC 3834): never written by a person."""
    auto = one_line(str(message.get("Auto-Submitted", "no"))).strip().lower()
    return (
        envelope_sender in ("", "<>")
        or auto not in ("", "no")
        or message.get_content_type() == "multipart/report"
    )


def loop_refusal(message: Mail, envelope_sender: str, owner: str) -> str | None:
    """Why mail to the *owner* address must not be forwarded, or None."""
    if been_there(message, owner):
        return "discarded: loop (forwarded by this address before)"
    if auto_generated(message, envelope_sender) and (
        message.get(BEEN_THERE) or message.get("List-Id")
    ):
        # A bounce or auto-reply another list passed on: two list servers whose owners are
        # each other's -owner addresses would pass it back and forth.
        return "discarded: automatic mail forwarded by another list"
    return None


def mark_forwarded(message: Mail, envelope_sender: str, owner: str) -> None:
    """Name *owner* in the loop header; automatic mail stays recognisably automatic though
    the forward has an envelope sender of its own."""
    if auto_generated(message, envelope_sender) and "Auto-Submitted" not in message:
        message["Auto-Submitted"] = "auto-forwarded"
    prepend(message, BEEN_THERE, owner)


def forward_to_owners(app: App, session: Session, mlist: MailList, stored: InboxMessage) -> str:
    owners = mlist.config.owners or mlist.config.moderators
    if not owners:
        return "discarded: the list has no owners"
    message = parse(stored.raw)
    owner = mlist.address("owner")
    refusal = loop_refusal(message, stored.mail_from, owner)
    if refusal:
        return refusal
    stamp(message, authenticate_stored(app.resolver, stored, message), app.domain)
    mark_forwarded(message, stored.mail_from, owner)
    send(app, session, mlist, "forward", message, owners, message_id=stored.id)
    return "forwarded to owners"
