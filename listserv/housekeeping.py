"""Housekeeping: rows that have served their purpose are deleted, so a server that runs for
years keeps a database of the same size.

After ``[server] retention_days``: used or expired tokens, member events, processed messages
(a message's bytes go with the last recipient's row of its SMTP transaction) and outgoing
mail whose every delivery is finished (with its deliveries and recorded failures). Sooner,
because they only count a recent window: the post log (a day, the daily caps) and the
auto-reply log (a day, the backscatter cap). A message a pending held post or
a digest entry still refers to is kept whatever its age. ``serve`` runs this every
``[server] housekeeping_interval`` seconds; ``listserv db prune`` runs it once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Delete, delete, exists, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from listserv.app import App
from listserv.store.db import transaction
from listserv.store.models import (
    AutoReply,
    Delivery,
    DigestEntry,
    HeldMessage,
    InboxMessage,
    MemberEvent,
    Outgoing,
    PostRecord,
    ReceivedBody,
    Token,
    utcnow,
)
from listserv.store.portal import prune_portal
from listserv.store.postlog import WINDOW

log = logging.getLogger(__name__)
AUTO_REPLY_WINDOW = timedelta(days=1)


# Rows deleted per transaction: each commit lets intake, heartbeats and delivery have the
# write lock between chunks, however much a years-old database has to shed. Outgoing mail is
# deleted in smaller chunks, its deliveries and recorded failures going with it.
PRUNE_CHUNK = 1000
OUTGOING_CHUNK = 100


def prune(
    app: App, now: datetime | None = None, progress: Callable[[int, int], None] | None = None
) -> dict[str, int]:
    """Delete what is no longer needed as of *now*, in chunks of a transaction each;
    returns how many rows, by table. *progress* is told (tables done, tables in all) after
    each table."""
    now = now or utcnow()
    cutoff = now - timedelta(days=app.config.server.retention_days)
    unfinished = exists().where(
        Delivery.outgoing_id == Outgoing.id, Delivery.status.in_(("queued", "sending"))
    )
    held = select(HeldMessage.message_id).where(HeldMessage.status == "pending")
    in_digest = select(DigestEntry.message_id).where(DigestEntry.message_id.is_not(None))
    steps: dict[str, Callable[[], int]] = {
        "tokens": lambda: _delete_in_chunks(
            app, Token.digest, or_(Token.used_at < cutoff, Token.expires_at < cutoff)
        ),
        "member_events": lambda: _delete_in_chunks(
            app, MemberEvent.id, MemberEvent.received_at < cutoff
        ),
        "post_log": lambda: _delete_in_chunks(
            app, PostRecord.id, PostRecord.posted_at <= now - WINDOW
        ),
        "auto_replies": lambda: _delete_in_chunks(
            app, AutoReply.id, AutoReply.sent_at <= now - AUTO_REPLY_WINDOW
        ),
        # Deliveries and recipient failures go with their message (ON DELETE CASCADE).
        "outgoing": lambda: _delete_in_chunks(
            app, Outgoing.id, Outgoing.created_at < cutoff, ~unfinished, chunk=OUTGOING_CHUNK
        ),
        "messages": lambda: _delete_in_chunks(
            app,
            InboxMessage.id,
            # A failed message is kept until reprocessed (``queue reprocess``).
            InboxMessage.status == "done",
            InboxMessage.received_at < cutoff,
            InboxMessage.id.not_in(held),
            InboxMessage.id.not_in(in_digest),
            execute=_with_unused_bodies,
        ),
        "portal": lambda: _in_one_transaction(app, lambda session: prune_portal(session, now)),
    }
    counts = {}
    for done, (table, step) in enumerate(steps.items(), 1):
        counts[table] = step()
        if progress is not None:
            progress(done, len(steps))
    return counts


def _in_one_transaction(app: App, step: Callable[[Session], int]) -> int:
    with transaction(app.sessions) as session:
        return step(session)


def _rows_deleted(session: Session, statement: Delete) -> int:
    return session.execute(statement).rowcount  # type: ignore[attr-defined]


def _with_unused_bodies(session: Session, statement: Delete) -> int:
    """Delete the messages of *statement*, and in the same transaction each of their bodies
    no other message refers to any more; how many messages."""
    body_ids = session.scalars(statement.returning(InboxMessage.body_id)).all()
    still_used = exists().where(InboxMessage.body_id == ReceivedBody.id)
    session.execute(
        delete(ReceivedBody)
        .where(ReceivedBody.id.in_(set(body_ids)), ~still_used)
        .execution_options(synchronize_session=False)
    )
    return len(body_ids)


def _delete_in_chunks(
    app: App,
    key: InstrumentedAttribute[Any],
    *where: ColumnElement[bool],
    chunk: int = PRUNE_CHUNK,
    execute: Callable[[Session, Delete], int] = _rows_deleted,
) -> int:
    """Delete the rows of *key*'s table matching *where*, *chunk* rows per transaction, each
    chunk's statement run by *execute*, which returns how many rows it deleted."""
    total = 0
    while True:
        with transaction(app.sessions) as session:
            batch = select(key).where(*where).limit(chunk).scalar_subquery()
            statement = delete(key.class_).where(key.in_(batch))
            deleted = execute(session, statement.execution_options(synchronize_session=False))
        total += deleted
        if deleted < chunk:
            return total


async def run_housekeeping(app: App, interval: float) -> None:
    """Prune every *interval* seconds until cancelled."""
    while True:
        try:
            pruned = await asyncio.to_thread(prune, app)
            if any(pruned.values()):
                log.info("housekeeping deleted %s", _summary(pruned))
        except Exception:
            log.exception("housekeeping failed")
        await asyncio.sleep(interval)


def _summary(pruned: dict[str, int]) -> str:
    return ", ".join(f"{table} {count}" for table, count in pruned.items())
