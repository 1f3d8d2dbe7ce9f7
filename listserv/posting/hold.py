"""Announcing a held post: the poster is told (with a way to withdraw it) and every
moderator gets a request carrying the post and a single-use token to decide it by reply.

Tokens go in the Reply-To (``NAME-confirm+TOKEN@domain``), one per moderator, so a reply
is all a moderator needs. The token is the authority: whoever replies with it decides, from
whatever address (moderators often answer from another mailbox than the one on the list);
the decision records both the replier and the moderator the request was sent to.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from email.message import EmailMessage

import jinja2
from sqlalchemy import select
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.auth.one_click import link_maker
from listserv.delivery.forget import TOKEN_KIND
from listserv.mail.codec import parse
from listserv.notices import allow_auto_reply, is_automated, notice, send_notice
from listserv.posting.rules import SENDER_CAP
from listserv.store.lists import MailList
from listserv.store.members import find_member
from listserv.store.models import HeldMessage, InboxMessage
from listserv.store.tokens import issue

log = logging.getLogger(__name__)

MODERATE = "moderate"
WITHDRAW = "withdraw"
# Tokens outlive the hold by a week, so a late reply is told what became of the post.
TOKEN_GRACE = timedelta(days=7)


def moderators_of(mlist: MailList) -> list[str]:
    """Who decides held posts: the moderators, else the owners."""
    return [a.lower() for a in (mlist.config.moderators or mlist.config.owners)]


def expires_at(mlist: MailList, held: HeldMessage) -> datetime:
    return held.held_at + timedelta(days=mlist.config.hold_expiry_days)


def token_ttl(mlist: MailList) -> timedelta:
    return timedelta(days=mlist.config.hold_expiry_days) + TOKEN_GRACE


def original_of(session: Session, held: HeldMessage) -> tuple[EmailMessage, str]:
    """The held post as received, and its envelope sender."""
    stored = session.get(InboxMessage, held.message_id)
    assert stored is not None
    return parse(stored.raw), stored.mail_from


def may_tell_poster(
    app: App, session: Session, held: HeldMessage, message: EmailMessage, envelope_sender: str
) -> bool:
    """Never answer a machine, and keep within the daily cap of automatic replies."""
    return not is_automated(message, envelope_sender) and allow_auto_reply(
        app, session, held.sender
    )


def answerable(
    app: App,
    session: Session,
    mlist: MailList,
    held: HeldMessage,
    action: str,
    to: str,
    template: str,
    **context: object,
) -> EmailMessage:
    """A notice about *held* to *to* whose Reply-To carries a fresh *action* token for it."""
    token = issue(
        session, mlist.id, action, address=to, payload={"held": held.id}, ttl=token_ttl(mlist)
    )
    confirm_address = mlist.address("confirm", token)
    message = notice(
        app,
        mlist,
        template,
        to,
        held=held,
        expires=expires_at(mlist, held),
        confirm_address=confirm_address,
        **context,
    )
    message["Reply-To"] = confirm_address
    return message


def announce_hold(
    app: App,
    session: Session,
    mlist: MailList,
    held: HeldMessage,
    message: EmailMessage,
    envelope_sender: str,
) -> None:
    """Tell the poster and ask every moderator; called in the transaction that held it. A
    notice that cannot be written (a broken template) is logged and skipped: the post stays
    held, in ``held list`` and the reminders, rather than being lost with it."""
    if may_tell_poster(app, session, held, message, envelope_sender):
        with notice_or_log(held, "the notice to its sender"):
            reply = answerable(
                app,
                session,
                mlist,
                held,
                WITHDRAW,
                held.sender,
                "held_notice.txt",
                unsubscribe_url=unsubscribe_link(app, session, mlist, held),
            )
            send_notice(app, session, mlist, reply, [held.sender], kind=TOKEN_KIND)
    if is_repeat_of_runaway_sender(session, held):
        return
    moderators = moderators_of(mlist)
    if not moderators:
        log.warning("%s: post %s held but the list has no moderators", mlist.name, held.id)
    for moderator in moderators:
        with notice_or_log(held, f"the request to {moderator}"):
            request = answerable(
                app, session, mlist, held, MODERATE, moderator, "moderation_request.txt"
            )
            request.add_attachment(message, disposition="attachment")
            send_notice(app, session, mlist, request, [moderator], kind=TOKEN_KIND)


@contextmanager
def notice_or_log(held: HeldMessage, what: str) -> Iterator[None]:
    try:
        yield
    except jinja2.TemplateError:
        log.exception("held post %s: %s could not be written; the post stays held", held.id, what)


def unsubscribe_link(app: App, session: Session, mlist: MailList, held: HeldMessage) -> str:
    """A member's one-click link, for the notice of a post that looks like "unsubscribe":
    they most likely wanted to leave, so tell them how (empty when there is no web)."""
    make_link = link_maker(app.config)
    if make_link is None or held.rule != "command-like":
        return ""
    if find_member(session, mlist.id, held.sender) is None:
        return ""
    return make_link(mlist.name, held.sender)


def is_repeat_of_runaway_sender(session: Session, held: HeldMessage) -> bool:
    """A sender over the daily cap whose earlier capped post is still pending: the moderators
    were asked once and see the rest in the reminder and ``held list``, so a runaway
    sender floods their mailboxes no more than the list."""
    if held.rule != SENDER_CAP:
        return False
    earlier = session.scalar(
        select(HeldMessage.id).where(
            HeldMessage.list_id == held.list_id,
            HeldMessage.sender == held.sender,
            HeldMessage.rule == SENDER_CAP,
            HeldMessage.status == "pending",
            HeldMessage.id != held.id,
        )
    )
    return earlier is not None
