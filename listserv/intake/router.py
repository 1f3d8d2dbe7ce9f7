"""The router: takes each received message from the inbox and hands it to the stage its
recipient address names (post, -request, -owner, -bounces…).

Each message is handled in one transaction together with everything it causes (queued mail,
held posts, membership changes), so a crash either leaves it unprocessed or fully processed.
Messages claimed together share that transaction for as long as a short time slice lasts: one
commit (one fsync) for many, while SQLite's write lock is never held for long.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, aliased, joinedload

from listserv.app import App
from listserv.bounces.actions import handle_bounce
from listserv.bounces.addresses import bounce_address_is_ours
from listserv.commands.confirm import handle_confirm, token_was_issued
from listserv.commands.request import handle_join, handle_leave, handle_request
from listserv.intake.authenticate import authenticate_ahead, check_ahead
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
# How long one routing transaction goes on taking the next claimed message.
GROUP_SLICE = 0.2


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
    # The lists are read once per transaction, however many messages it handles.
    lists: dict[str, MailList] = session.info.setdefault("lists", {})
    if "list_names" not in session.info:
        session.info["list_names"] = list_names(session)
    names = session.info["list_names"]
    target = parse_recipient(stored.rcpt_to, app.domain, names)
    if target is not None and target.role == POSTMASTER:
        return forward_to_postmaster(app, session, stored)
    if target is None or target.role not in HANDLERS:
        return f"failed: no list address {stored.rcpt_to}"
    if target.list_name not in lists:
        lists[target.list_name] = get_list(session, target.list_name, app.domain)
    return HANDLERS[target.role](app, session, lists[target.list_name], stored)


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
        # same address is claimed by another process (one that may have died with it). Those
        # claims are few and found once, joined to the candidates: a condition per candidate
        # would read the whole backlog for each of them.
        older = aliased(InboxMessage)
        held_by_others = (
            select(older.rcpt_to, func.min(older.id).label("first"))
            .where(
                older.status == "new",
                older.claimed_by.is_not(None),
                older.claimed_by != instance_id,
            )
            .group_by(older.rcpt_to)
            .subquery()
        )
        oldest = (
            select(InboxMessage.id)
            .outerjoin(held_by_others, held_by_others.c.rcpt_to == InboxMessage.rcpt_to)
            .where(
                *claimable,
                or_(held_by_others.c.first.is_(None), InboxMessage.id < held_by_others.c.first),
            )
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


def route_group(
    app: App, message_ids: list[int], intake_waiting: Callable[[], bool] = lambda: False
) -> int:
    """Handle claimed messages, oldest first, in one transaction until the time slice is
    over or intake has messages to commit (on SQLite they would wait for this transaction's
    write lock); returns how many were handled (the rest stay claimed for the next pass).
    Should any of them fail, nothing of the group is kept and each is handled alone, so the
    failure is recorded with its own message and the others go through."""
    checks = check_ahead(app, message_ids)
    attempted: list[int] = []
    outcomes: list[str] = []
    started = time.monotonic()
    try:
        with transaction(app.sessions) as session:
            rows = session.scalars(
                select(InboxMessage)
                .where(InboxMessage.id.in_(message_ids))
                .options(joinedload(InboxMessage.body))
            )
            claimed = {row.id: row for row in rows}
            for row in claimed.values():
                if row.authentication is None and row.id in checks:
                    row.authentication = checks[row.id]  # kept for the next pass too
            for message_id in message_ids:
                if attempted and (time.monotonic() - started > GROUP_SLICE or intake_waiting()):
                    break
                attempted.append(message_id)
                outcomes.append(handle_claimed(app, session, claimed.get(message_id)))
    except Exception as error:
        if not attempted:
            raise  # the database, not a message: the router tries again later
        log.info("%d messages are handled one by one: %s", len(attempted), error)
        for message_id in attempted:
            process(app, message_id)
        return len(attempted)
    for message_id, outcome in zip(attempted, outcomes, strict=True):
        log.info("message %s: %s", message_id, outcome)
    return len(attempted)


def handle_claimed(app: App, session: Session, stored: InboxMessage | None) -> str:
    if stored is None or stored.status != "new":
        return "gone"
    outcome = handle(app, session, stored)
    finish(session, stored.id, "failed" if outcome.startswith("failed") else "done", outcome)
    return outcome


FINISH = (
    update(InboxMessage)
    .where(InboxMessage.id == bindparam("message"), InboxMessage.status == "new")
    .values(
        status=bindparam("new_status"),
        outcome=bindparam("new_outcome"),
        processed_at=bindparam("at"),
    )
)


def finish(session: Session, message_id: int, status: str, outcome: str) -> None:
    """Record the outcome, unless the message was finished meanwhile: then everything this
    transaction did is rolled back, so a message never takes effect twice."""
    done = session.connection().execute(
        FINISH,
        {
            "message": message_id,
            "new_status": status,
            "new_outcome": outcome[:2000],
            "at": utcnow(),
        },
    )
    if not done.rowcount:  # type: ignore[attr-defined]
        raise Gone


async def run_router(
    app: App,
    instance_id: str,
    wakeup: asyncio.Event,
    poll: float,
    intake_waiting: Callable[[], bool] = lambda: False,
) -> None:
    """Process the inbox until cancelled: on each wake-up and every *poll* seconds; a group
    of messages shares a transaction while *intake_waiting* says no messages wait for it."""
    budget = TimeBudget(app.config.server.message_time_budget)
    claimed: list[int] = []  # claimed and not handled yet, oldest first
    more = False  # the last claim was full: more messages are waiting
    while True:
        wakeup.clear()
        try:
            if not claimed:
                claimed = await asyncio.to_thread(claim_messages, app, instance_id)
                more = len(claimed) == CLAIM_BATCH
            # Messages over their budget stay claimed while they finish: not started again.
            ids = [i for i in claimed if i not in budget.running]
            claimed = []
            if ids:
                # None: over its budget, the group goes on in its thread.
                work = partial(route_group, app, ids, intake_waiting)
                claimed = ids[await budget.run(ids, work) or len(ids) :]
        except SQLAlchemyError as error:
            # The database went away: keep the router alive and try again later; the
            # claimed messages are released by the heartbeat if this process dies.
            log.warning("router: %s", describe(error))
            claimed, ids = [], []
        if claimed or (more and ids):
            continue
        await nap(wakeup, poll)
