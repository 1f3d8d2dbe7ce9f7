"""The subscription lifecycle: a change asked for by mail waits for the address to confirm it.

Subscribing, unsubscribing and changing delivery by mail each issue a token bound to the
address concerned and mail it a confirmation request (Reply-To ``NAME-confirm+TOKEN``). Only
that address can confirm: a reply from it, or ``confirm TOKEN`` sent from it. Then the change
is made and the member is welcomed, bid goodbye or told the new delivery mode.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.delivery.forget import TOKEN_KIND
from listserv.notices import allow_auto_reply, notice, send_notice
from listserv.store.lists import MailList
from listserv.store.members import DELIVERY_MODES, add_member, find_member, remove_member
from listserv.store.models import Member, Token, utcnow
from listserv.store.tokens import issue, use

SUBSCRIBE, UNSUBSCRIBE, SET_DELIVERY = "subscribe", "unsubscribe", "set-delivery"
CHANGES = (SUBSCRIBE, UNSUBSCRIBE, SET_DELIVERY)
# What a confirmed change reports (the router's log line, and the command reply's key).
SUBSCRIBED, UNSUBSCRIBED, DELIVERY_CHANGED = "subscribed", "unsubscribed", "delivery-changed"
ALREADY_MEMBER, NOT_MEMBER = "already-member", "not-member"
WRONG_ADDRESS = "discarded: the token was issued to another address"


def request_confirmation(
    app: App, session: Session, mlist: MailList, address: str, action: str, **payload: Any
) -> bool:
    """Mail *address* a confirmation request for *action*; False (and no token) when the
    address already had its share of mail from us today."""
    if not allow_auto_reply(app, session, address):
        return False
    withdraw_pending(session, mlist.id, address)
    ttl = timedelta(days=app.config.server.confirmation_expiry_days)
    token = issue(session, mlist.id, action, address=address, payload=payload, ttl=ttl)
    confirm_address = mlist.address("confirm", token)
    message = notice(
        app,
        mlist,
        "confirm.txt",
        address,
        sender=mlist.address("request"),
        address=address,
        action=action,
        token=token,
        confirm_address=confirm_address,
        expires=utcnow() + ttl,
        delivery=payload.get("delivery", ""),
        confirm_url=confirm_page(app, token),
    )
    message["Reply-To"] = confirm_address
    send_notice(app, session, mlist, message, [address], kind=TOKEN_KIND)
    return True


def withdraw_pending(session: Session, list_id: int, address: str) -> None:
    """One request per address and list: a new one replaces what the address asked before
    (its token stops working), so a second "subscribe" never leaves a stale request."""
    session.execute(
        delete(Token).where(
            Token.list_id == list_id,
            Token.address == address,
            Token.action.in_(CHANGES),
            Token.used_at.is_(None),
        )
    )


def confirm_page(app: App, token: str) -> str:
    """The portal's page for the token (``/confirm/TOKEN``), when the portal has an address."""
    web = app.config.web
    return f"{web.base_url.rstrip('/')}/confirm/{token}" if web and web.base_url else ""


def tell_member(
    app: App, session: Session, mlist: MailList, template: str, address: str, delivery: str
) -> None:
    """Queue a lifecycle mail (welcome, goodbye, delivery changed) to *address*."""
    message = notice(
        app,
        mlist,
        template,
        address,
        sender=mlist.address("request"),
        address=address,
        delivery=delivery,
    )
    send_notice(app, session, mlist, message, [address])


def welcome(app: App, session: Session, mlist: MailList, member: Member) -> None:
    tell_member(app, session, mlist, "welcome.txt", member.address, member.delivery)


def subscribe(app: App, session: Session, mlist: MailList, address: str, payload: dict) -> str:
    delivery = payload.get("delivery") or "regular"
    member, new = add_member(
        session, mlist.id, address, delivery=delivery if delivery in DELIVERY_MODES else "regular"
    )
    if not new:
        return ALREADY_MEMBER
    welcome(app, session, mlist, member)
    return SUBSCRIBED


def unsubscribe(app: App, session: Session, mlist: MailList, address: str, payload: dict) -> str:
    member = find_member(session, mlist.id, address)
    if member is None:
        return NOT_MEMBER
    delivery = member.delivery
    remove_member(session, mlist.id, address)
    tell_member(app, session, mlist, "goodbye.txt", address, delivery)
    return UNSUBSCRIBED


def set_delivery(app: App, session: Session, mlist: MailList, address: str, payload: dict) -> str:
    member = find_member(session, mlist.id, address)
    if member is None:
        return NOT_MEMBER
    if payload.get("delivery") in DELIVERY_MODES:
        member.delivery = payload["delivery"]
    tell_member(app, session, mlist, "delivery.txt", address, member.delivery)
    return DELIVERY_CHANGED


Change = Callable[[App, Session, MailList, str, dict], str]


def confirmed_by_its_address(change: Change) -> Callable[..., str]:
    """A token action that only the address the token was issued to can take."""

    def action(
        app: App,
        session: Session,
        mlist: MailList,
        row: Token,
        message: EmailMessage,
        sender: str,
    ) -> str:
        if sender.lower() != row.address:
            return WRONG_ADDRESS
        use(row)
        return change(app, session, mlist, row.address, dict(row.payload or {}))

    return action


def pending_confirmations(session: Session, list_id: int) -> list[Token]:
    """Changes asked for by mail and not yet confirmed, one per address (the newest),
    oldest first."""
    rows = session.scalars(
        select(Token)
        .where(
            Token.list_id == list_id,
            Token.action.in_(CHANGES),
            Token.used_at.is_(None),
            Token.expires_at > utcnow(),
        )
        .order_by(Token.created_at)
    )
    newest = {row.address: row for row in rows}
    return sorted(newest.values(), key=lambda row: row.created_at)


def delivery_counts(session: Session, list_id: int) -> dict[str, int]:
    """Members of the list by delivery mode, every mode named."""
    counts = dict.fromkeys(DELIVERY_MODES, 0)
    query = (
        select(Member.delivery, func.count())
        .where(Member.list_id == list_id)
        .group_by(Member.delivery)
    )
    for mode, count in session.execute(query):
        counts[mode] = count
    return counts
