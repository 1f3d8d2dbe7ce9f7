"""The ``NAME-confirm+TOKEN`` address: a reply carrying a token does what the token was
issued for (see ``tokens.ACTIONS``), when a person, not a robot, sends it.
"""

from __future__ import annotations

from email.message import EmailMessage

from sqlalchemy.orm import Session

from listserv.app import App
from listserv.mail.addresses import Target, parse_recipient
from listserv.mail.codec import parse
from listserv.notices import is_automated
from listserv.posting.pipeline import post_sender
from listserv.store.lists import MailList, get_list
from listserv.store.models import InboxMessage
from listserv.store.tokens import ACTIONS, lookup, was_issued


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


def token_was_issued(app: App, target: Target) -> bool:
    """RCPT check: ``NAME-confirm+<anything>`` is refused unless we issued that token, so a
    made-up address cannot have the message stored once per recipient."""
    with app.sessions() as session:
        mlist = get_list(session, target.list_name, app.domain)
        return was_issued(session, mlist.id, target.detail)
