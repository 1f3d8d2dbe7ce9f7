"""The ``NAME-confirm+TOKEN`` address: a reply carrying a token does what the token was
issued for (the table ``ACTIONS``), when a person, not a robot, sends it.
"""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage

from sqlalchemy.orm import Session

from listserv.app import App
from listserv.commands.subscriptions import (
    SET_DELIVERY,
    SUBSCRIBE,
    UNSUBSCRIBE,
    confirmed_by_its_address,
    set_delivery,
    subscribe,
    unsubscribe,
)
from listserv.mail.addresses import parse_recipient
from listserv.mail.codec import parse
from listserv.moderation.decisions import moderate_by_mail, withdraw_by_mail
from listserv.notices import is_automated
from listserv.posting.hold import MODERATE, WITHDRAW
from listserv.posting.pipeline import post_sender
from listserv.store.lists import MailList
from listserv.store.models import InboxMessage, Token
from listserv.store.tokens import lookup

# What each kind of token does when it comes back, given the list, the live token row, the
# mail that carried it and its sender; returns one line saying what was done (for the reply
# and the log). It calls ``tokens.use(row)`` itself once the action is taken.
ConfirmAction = Callable[[App, Session, MailList, Token, EmailMessage, str], str]
ACTIONS: dict[str, ConfirmAction] = {
    SUBSCRIBE: confirmed_by_its_address(subscribe),
    UNSUBSCRIBE: confirmed_by_its_address(unsubscribe),
    SET_DELIVERY: confirmed_by_its_address(set_delivery),
    MODERATE: moderate_by_mail,
    WITHDRAW: withdraw_by_mail,
}


def handle_confirm(app: App, session: Session, mlist: MailList, stored: InboxMessage) -> str:
    message = parse(stored.raw)
    # A vacation message answering a confirmation request must not confirm a subscription
    # someone else asked for in this address's name.
    if is_automated(message, stored.mail_from):
        return "discarded: automated reply to a confirmation address"
    target = parse_recipient(stored.rcpt_to, app.domain, {mlist.name})
    sender = post_sender(message, stored.mail_from)
    outcome = confirm_token(app, session, mlist, target.detail if target else "", message, sender)
    return outcome or "discarded: unknown, used or expired token"


def confirm_token(
    app: App, session: Session, mlist: MailList, token: str, message: EmailMessage, sender: str
) -> str | None:
    """Do what a live *token* was issued for; None when it is unknown, used or expired.
    Shared by the ``-confirm`` address and the ``confirm TOKEN`` command."""
    row = lookup(session, mlist.id, token)
    action = ACTIONS.get(row.action) if row is not None else None
    if row is None or action is None:
        return None
    return action(app, session, mlist, row, message, sender)
