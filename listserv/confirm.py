"""The ``NAME-confirm+TOKEN`` address: a reply carrying a token does what the token was
issued for (see ``tokens.ACTIONS``), when a person, not a robot, sends it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from .addresses import parse_recipient
from .app import App
from .decorate import parse
from .lists import MailList
from .models import Message
from .notices import is_automated
from .pipeline import post_sender
from .tokens import ACTIONS, lookup


def handle_confirm(app: App, session: Session, mlist: MailList, stored: Message) -> str:
    message = parse(stored.raw)
    # A vacation message answering a confirmation request must not confirm a subscription
    # someone else asked for in this address's name.
    if is_automated(message, stored.mail_from):
        return "discarded: automated reply to a confirmation address"
    target = parse_recipient(stored.rcpt_to, app.domain, {mlist.name})
    row = lookup(session, mlist.id, target.detail) if target else None
    action = ACTIONS.get(row.action) if row is not None else None
    if row is None or action is None:
        return "discarded: unknown, used or expired token"
    return action(app, session, mlist, row, message, post_sender(message, stored.mail_from))
