"""Mail the server writes itself (replies, notices, requests), rendered from templates.

Every such mail names the list in its headers, says it was written by a machine
(``Auto-Submitted``, RFC 3834) and goes out through the outbound queue with the list's bounce
address as envelope sender, so a bounce of a notice never reaches a person.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from email.message import EmailMessage, Message
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.delivery.outbound import send
from listserv.mail.addresses import addresses_in, sender_of
from listserv.mail.list_headers import add_list_headers
from listserv.store.lists import MailList
from listserv.store.models import AutoReply, utcnow

# Senders that are machines: never answered, so two robots never talk to each other.
ROBOT_LOCAL_PARTS = ("mailer-daemon", "postmaster", "noreply", "no-reply", "bounce", "bounces")


def is_automated(message: Message, envelope_sender: str) -> bool:
    """True for mail that must not be answered: bounces, auto-replies, bulk and list mail."""
    if not envelope_sender or envelope_sender == "<>":
        return True
    auto = str(message.get("Auto-Submitted", "no")).strip().lower()
    if auto and auto != "no":
        return True
    if str(message.get("Precedence", "")).strip().lower() in ("bulk", "junk", "list"):
        return True
    if message.get("X-BeenThere") or message.get("List-Id") or message.get("X-Listserv-Notice"):
        return True
    if message.get_content_type() == "multipart/report":
        return True
    for address in [envelope_sender, sender_of(message.get("From")) or ""]:
        local = address.partition("@")[0].lower()
        if local.startswith(ROBOT_LOCAL_PARTS) or local.endswith(("-bounces", "-request")):
            return True
    return False


def notice(
    app: App,
    mlist: MailList,
    template: str,
    to: str,
    *,
    sender: str | None = None,
    **context: Any,
) -> EmailMessage:
    """Render a mail template in the list's language, with the list's headers."""
    message = app.templates.mail(
        mlist.config.language,
        template,
        sender=sender or mlist.address("owner"),
        to=to,
        domain=app.domain,
        mlist=mlist,
        list_address=mlist.address(),
        request_address=mlist.address("request"),
        owner_address=mlist.address("owner"),
        **context,
    )
    add_list_headers(message, mlist)
    # A notice is not a post: members must not reply to the list by accident.
    del message["List-Post"]
    message["Auto-Submitted"] = "auto-replied"
    message["X-Listserv-Notice"] = template.rsplit(".", 1)[0]
    return message


def send_notice(
    app: App,
    session: Session,
    mlist: MailList,
    message: Message,
    recipients: Iterable[str] | None = None,
    kind: str = "notice",
) -> None:
    """Queue a server-written message from the list's bounce address."""
    to = list(recipients) if recipients is not None else addresses_in(message["To"])
    send(app, session, mlist, kind, message, to)


def allow_auto_reply(app: App, session: Session, address: str) -> bool:
    """Record a reply to *address* unless it already had its share today (backscatter cap:
    ``[server] max_autoreplies_per_day``)."""
    since = utcnow() - timedelta(days=1)
    sent = session.scalar(
        select(func.count())
        .select_from(AutoReply)
        .where(AutoReply.address == address, AutoReply.sent_at > since)
    )
    if (sent or 0) >= app.config.server.max_autoreplies_per_day:
        return False
    session.add(AutoReply(address=address))
    return True
