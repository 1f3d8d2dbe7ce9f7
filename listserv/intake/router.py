"""The router: takes each received message from the inbox and hands it to the stage its
recipient address names (post, -request, -owner, -bounces…).

Each message is handled in a transaction together with everything it causes (queued mail,
held posts, membership changes), so a crash either leaves it unprocessed or fully processed;
``routing`` puts several messages in one transaction and decides when each is handled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.bounces.scores import handle_bounce
from listserv.commands.confirm import handle_confirm
from listserv.commands.request import handle_join, handle_leave, handle_request
from listserv.intake.owner import forward_to_owners
from listserv.mail.addresses import parse_recipient
from listserv.posting.aliases import alias_is_live, forward_to_poster
from listserv.posting.pipeline import process_post
from listserv.store.claims import claim_rows
from listserv.store.db import describe, transaction
from listserv.store.lists import MailList, get_list, list_names
from listserv.store.models import InboxMessage, utcnow

log = logging.getLogger(__name__)

Handler = Callable[[App, Session, MailList, InboxMessage], str]
CLAIM_BATCH = 20
# Attempts at a message whose processing raises OperationalError before it is marked failed.
MAX_ATTEMPTS = 5


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
# Roles whose addresses need a further look before RCPT is accepted (a revoked alias).
RCPT_CHECKS = {"alias": alias_is_live}


def handle(app: App, session: Session, stored: InboxMessage) -> str:
    # The lists are read once per transaction, which may route many messages.
    names = session.info.get("list_names")
    if names is None:
        names = session.info["list_names"] = list_names(session)
    target = parse_recipient(stored.rcpt_to, app.domain, names)
    if target is None or target.role not in HANDLERS:
        return f"failed: no list address {stored.rcpt_to}"
    lists = session.info.setdefault("lists", {})
    mlist = lists.get(target.list_name)
    if mlist is None:
        mlist = lists[target.list_name] = get_list(session, target.list_name, app.domain)
    return HANDLERS[target.role](app, session, mlist, stored)


def claim_messages(
    app: App, instance_id: str, limit: int = CLAIM_BATCH, skip: Collection[int] = ()
) -> list[int]:
    """Take up to *limit* new messages, oldest first, but for those in *skip* (ours, under
    way)."""
    with transaction(app.sessions) as session:
        # Our own claims are left over from a pass the database interrupted.
        claimable = (
            InboxMessage.status == "new",
            (InboxMessage.claimed_by.is_(None) | (InboxMessage.claimed_by == instance_id)),
            *((InboxMessage.id.not_in(skip),) if skip else ()),
        )
        oldest = select(InboxMessage.id).where(*claimable).order_by(InboxMessage.id).limit(limit)
        ids = claim_rows(session, InboxMessage, oldest, *claimable, claimed_by=instance_id)
    return sorted(ids)


class Gone(Exception):
    """The message was processed meanwhile (by another process, or ``inject``)."""


def process(app: App, message_id: int) -> str:
    """Handle one stored message; a failure is recorded on it, never lost silently."""
    try:
        with transaction(app.sessions) as session:
            stored = session.get(InboxMessage, message_id)
            outcome = route(app, session, stored)
    except Gone:
        return "gone"
    except OperationalError as error:
        # Usually the database, not the message, failed: it stays new to be processed again,
        # but only so often, or a message that always fails would block the queue for good.
        retry = count_attempt(app, message_id, error)
        if retry is None:
            return "gone"
        if retry:
            raise
        return "failed"
    except Exception as error:
        log.exception("message %s could not be processed", message_id)
        with transaction(app.sessions) as session:
            stored = session.get(InboxMessage, message_id)
            if stored is not None:
                stored.status = "failed"
                stored.outcome = f"failed: {type(error).__name__}: {error}"[:2000]
        return "failed"
    log.info("message %s: %s", message_id, outcome)
    return outcome


def route(app: App, session: Session, stored: InboxMessage | None) -> str:
    """Handle one stored message in *session* and record the outcome. (The caller holds
    *stored* until the commit: the session keeps only what is referenced.)"""
    if stored is None or stored.status != "new":
        return "gone"
    outcome = handle(app, session, stored)
    finish(session, stored.id, "failed" if outcome.startswith("failed") else "done", outcome)
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


def count_attempt(app: App, message_id: int, error: OperationalError) -> bool | None:
    """Count a failed attempt; True while the message may be tried again, False once it is
    marked failed (kept, with the error, for the operator), None if it is no longer new."""
    with transaction(app.sessions) as session:
        attempts = session.scalar(
            update(InboxMessage)
            .where(InboxMessage.id == message_id, InboxMessage.status == "new")
            .values(attempts=InboxMessage.attempts + 1)
            .returning(InboxMessage.attempts)
            .execution_options(synchronize_session=False)
        )
        if attempts is None:
            return None
        if attempts < MAX_ATTEMPTS:
            return True
        log.error("message %s failed %d times: %s", message_id, attempts, describe(error))
        reason = str(error.orig or error).strip().splitlines()
        finish(session, message_id, "failed", f"failed after {attempts} attempts: {reason[0]}")
    return False
