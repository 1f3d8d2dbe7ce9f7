"""The router: takes each received message from the inbox and hands it to the stage its
recipient address names (post, -request, -owner, -bounces…).

Each message is handled in one transaction together with everything it causes (queued mail,
held posts, membership changes), so a crash either leaves it unprocessed or fully processed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial

from sqlalchemy import exists, select, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from listserv.app import App
from listserv.bounces.actions import handle_bounce
from listserv.bounces.addresses import bounce_address_is_ours
from listserv.commands.confirm import handle_confirm, token_was_issued
from listserv.commands.request import handle_join, handle_leave, handle_request
from listserv.intake.authenticate import authenticate_ahead
from listserv.intake.budget import TimeBudget
from listserv.intake.inbox import defer, keep_failed
from listserv.intake.owner import forward_to_owners
from listserv.intake.postmaster import forward_to_postmaster
from listserv.mail.addresses import POSTMASTER, parse_recipient
from listserv.posting.aliases import alias_is_live, forward_to_poster
from listserv.posting.pipeline import process_post
from listserv.store.claims import claim_rows, nap
from listserv.store.db import describe, transaction
from listserv.store.lists import MailList, get_list, list_names
from listserv.store.models import InboxMessage, utcnow

log = logging.getLogger(__name__)

Handler = Callable[[App, Session, MailList, InboxMessage], str]
CLAIM_BATCH = 20


# What each role of a list address does. An address whose role has no handler is refused at
# RCPT, so the server never accepts mail it cannot act on.
HANDLERS: dict[str, Handler] = {
    "post": process_post,
    "owner": forward_to_owners,
    "bounces": handle_bounce,
    "confirm": handle_confirm,
    "request": handle_request,
    "join": handle_join,
    "leave": handle_leave,
    "alias": forward_to_poster,
}
# Roles of addresses that belong to no list, handled by ``handle`` itself.
SITE_ROLES = {POSTMASTER}
# Roles whose addresses need a further look before RCPT is accepted: a revoked alias, a
# token or bounce address we never issued.
RCPT_CHECKS = {
    "alias": alias_is_live,
    "confirm": token_was_issued,
    "bounces": bounce_address_is_ours,
}


def handle(app: App, session: Session, stored: InboxMessage) -> str:
    target = parse_recipient(stored.rcpt_to, app.domain, list_names(session))
    if target is not None and target.role == POSTMASTER:
        return forward_to_postmaster(app, session, stored)
    if target is None or target.role not in HANDLERS:
        return f"failed: no list address {stored.rcpt_to}"
    mlist = get_list(session, target.list_name, app.domain)
    return HANDLERS[target.role](app, session, mlist, stored)


def claim_messages(app: App, instance_id: str) -> list[int]:
    """Take up to ``CLAIM_BATCH`` new messages, oldest first."""
    with transaction(app.sessions) as session:
        # Our own claims are left over from a pass the database interrupted.
        claimable = (
            InboxMessage.status == "new",
            (InboxMessage.claimed_by.is_(None) | (InboxMessage.claimed_by == instance_id)),
            # A message deferred after a database error waits for its next attempt.
            (InboxMessage.next_attempt_at.is_(None) | (InboxMessage.next_attempt_at <= utcnow())),
        )
        # A list's posts are handled in the order they came: none while an older one to the
        # same address is claimed by another process (one that may have died with it).
        older = aliased(InboxMessage)
        behind_another = exists().where(
            older.status == "new",
            older.rcpt_to == InboxMessage.rcpt_to,
            older.id < InboxMessage.id,
            older.claimed_by.is_not(None),
            older.claimed_by != instance_id,
        )
        oldest = (
            select(InboxMessage.id)
            .where(*claimable, ~behind_another)
            .order_by(InboxMessage.id)
            .limit(CLAIM_BATCH)
        )
        ids = claim_rows(session, InboxMessage, oldest, *claimable, claimed_by=instance_id)
    return sorted(ids)


class Gone(Exception):
    """The message was processed meanwhile (by another process, or ``inject``)."""


def process(app: App, message_id: int) -> str:
    """Handle one stored message; a failure is recorded on it, never lost silently."""
    try:
        authenticate_ahead(app, message_id)
        with transaction(app.sessions) as session:
            stored = session.get(InboxMessage, message_id)
            if stored is None or stored.status != "new":
                return "gone"
            outcome = handle(app, session, stored)
            status = "failed" if outcome.startswith("failed") else "done"
            finish(session, message_id, status, outcome)
    except Gone:
        return "gone"
    except DBAPIError as error:
        # The database refused, not the message: tried again later, by whichever process.
        if defer(app, message_id, error) is False:
            return "failed"
        return "deferred"
    except Exception as error:
        log.exception("message %s could not be processed", message_id)
        keep_failed(app, message_id, error)
        return "failed"
    log.info("message %s: %s", message_id, outcome)
    return outcome


def finish(session: Session, message_id: int, status: str, outcome: str) -> None:
    """Record the outcome, unless the message was finished meanwhile: then everything this
    transaction did is rolled back, so a message never takes effect twice."""
    done = session.execute(
        update(InboxMessage)
        .where(InboxMessage.id == message_id, InboxMessage.status == "new")
        .values(status=status, outcome=outcome[:2000], processed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if not done.rowcount:  # type: ignore[attr-defined]
        raise Gone


async def run_router(app: App, instance_id: str, wakeup: asyncio.Event, poll: float) -> None:
    """Process the inbox until cancelled: on each wake-up and every *poll* seconds."""
    budget = TimeBudget(app.config.server.message_time_budget)
    while True:
        wakeup.clear()
        try:
            claimed = await asyncio.to_thread(claim_messages, app, instance_id)
            # Messages over their budget stay claimed while they finish: not started again.
            ids = [i for i in claimed if i not in budget.running]
            for message_id in ids:
                await budget.run(message_id, partial(process, app, message_id))
        except SQLAlchemyError as error:
            # The database went away: keep the router alive and try again later; the
            # claimed messages are released by the heartbeat if this process dies.
            log.warning("router: %s", describe(error))
            claimed = ids = []
        if len(claimed) == CLAIM_BATCH and ids:
            continue
        await nap(wakeup, poll)
