"""Which ``serve`` process works on what.

Each process registers an instance and beats its heartbeat. Messages and delivery batches
it claims carry its id; when a process falls silent for three heartbeats (killed, machine
lost), the others release its claims and the work is done again. This is what makes accepted
mail survive ``kill -9`` with several processes sharing one database.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from listserv.store.db import transaction
from listserv.store.models import Delivery, InboxMessage, Instance, utcnow

MISSED_BEATS = 3


def register_instance(sessions: sessionmaker[Session]) -> str:
    instance_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    with transaction(sessions) as session:
        session.add(Instance(id=instance_id, hostname=socket.gethostname(), pid=os.getpid()))
    return instance_id


def unregister_instance(sessions: sessionmaker[Session], instance_id: str) -> None:
    """A clean stop: give back everything still claimed, then leave."""
    with transaction(sessions) as session:
        release_claims(session, [instance_id])
        session.execute(delete(Instance).where(Instance.id == instance_id))


def beat(sessions: sessionmaker[Session], instance_id: str, interval: float) -> int:
    """Refresh our heartbeat and release the claims of silent processes; returns how many
    processes were found dead."""
    now = utcnow()
    with transaction(sessions) as session:
        session.execute(update(Instance).where(Instance.id == instance_id).values(heartbeat_at=now))
        cutoff = now - timedelta(seconds=interval * MISSED_BEATS)
        dead = list(session.scalars(select(Instance.id).where(Instance.heartbeat_at < cutoff)))
        if dead:
            release_claims(session, dead)
            session.execute(delete(Instance).where(Instance.id.in_(dead)))
        release_orphans(session)
    return len(dead)


def release_claims(session: Session, instance_ids: list[str]) -> None:
    session.execute(
        update(InboxMessage)
        .where(InboxMessage.claimed_by.in_(instance_ids), InboxMessage.status == "new")
        .values(claimed_by=None)
    )
    session.execute(
        update(Delivery)
        .where(Delivery.claimed_by.in_(instance_ids), Delivery.status == "sending")
        .values(status="queued", claimed_by=None)
    )


def release_orphans(session: Session) -> None:
    """Claims naming no registered process (its row was already removed)."""
    alive = select(Instance.id)
    session.execute(
        update(InboxMessage)
        .where(InboxMessage.status == "new", InboxMessage.claimed_by.is_not(None))
        .where(InboxMessage.claimed_by.not_in(alive))
        .values(claimed_by=None)
    )
    session.execute(
        update(Delivery)
        .where(Delivery.status == "sending", Delivery.claimed_by.not_in(alive))
        .values(status="queued", claimed_by=None)
    )


def claim_rows(
    session: Session,
    model: Any,
    candidates: Select[Any],
    *still_free: ColumnElement[bool],
    **taken: Any,
) -> list[int]:
    """Mark those of the *candidates* rows (a select of ``model.id``) that are *still_free*
    as taken (the column values *taken*) and return their ids. The claim is one ``UPDATE``:
    SQLite takes its write lock before reading, and PostgreSQL skips rows another transaction
    holds, so two processes never both take a row."""
    return list(
        session.scalars(
            update(model)
            .where(model.id.in_(lock_rows(candidates, session)), *still_free)
            .values(**taken)
            .returning(model.id)
            .execution_options(synchronize_session=False)
        )
    )


def lock_rows(statement, session: Session):  # type: ignore[no-untyped-def]
    """``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so processes never claim the same rows;
    SQLite serialises writers itself."""
    if session.get_bind().dialect.name == "postgresql":
        return statement.with_for_update(skip_locked=True)
    return statement


async def nap(wakeup: asyncio.Event, seconds: float) -> None:
    """Wait until *wakeup* is set or *seconds* pass, whichever comes first. (Not
    ``wait_for``: on Python 3.11 it swallows a cancel that lands as the event fires, and a
    stopping server would wait for that task forever.)"""
    waiter = asyncio.ensure_future(wakeup.wait())
    try:
        await asyncio.wait([waiter], timeout=seconds)
    finally:
        waiter.cancel()
