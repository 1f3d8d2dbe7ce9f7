"""Which ``serve`` process works on what.

Each process registers an instance and beats its heartbeat. Messages and delivery batches
it claims carry its id; when a process falls silent for three heartbeats (killed, machine
lost), the others release its claims and the work is done again. This is what makes accepted
mail survive ``kill -9`` with several processes sharing one database.

Silence is judged by each process on its own monotonic clock, from the beat counts it sees:
the times hosts write are never compared (SQLite has no clock of its own to share, and a
host's clock may run ahead or be stepped).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from listserv.store.db import database_now, transaction
from listserv.store.models import Delivery, InboxMessage, Instance

log = logging.getLogger(__name__)

MISSED_BEATS = 3


def register_instance(sessions: sessionmaker[Session]) -> str:
    instance_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    with transaction(sessions) as session:
        _join(session, instance_id)
    return instance_id


def _join(session: Session, instance_id: str) -> None:
    now = database_now(session)
    session.add(
        Instance(
            id=instance_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            started_at=now,
            heartbeat_at=now,
        )
    )


def unregister_instance(sessions: sessionmaker[Session], instance_id: str) -> None:
    """A clean stop: give back everything still claimed, then leave."""
    with transaction(sessions) as session:
        release_claims(session, [instance_id])
        session.execute(delete(Instance).where(Instance.id == instance_id))


class Beat(NamedTuple):
    # Silent processes whose work was taken over.
    dead: int
    # We had been declared dead ourselves (stalled, or the database unreachable, for three
    # beats): our claims were given back, and we registered again.
    rejoined: bool


class Watch:
    """The beat counts of the other processes as this one saw them, and since when (on its
    monotonic clock) each has not changed."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[int, float]] = {}
        self.looked_at = float("-inf")

    def silent(self, beats: dict[str, int], limit: float) -> list[str]:
        """The processes of *beats* (id: count) whose count has not changed for *limit*
        seconds of our looking."""
        now = time.monotonic()
        if now - self.looked_at > limit:
            # We were not looking (stalled, or the database away): the others may have
            # beaten meanwhile, which we could not see. Start over.
            self.seen = {}
        self.looked_at = now
        self.seen = {
            i: seen if (seen := self.seen.get(i)) and seen[0] == count else (count, now)
            for i, count in beats.items()
        }
        return [i for i, (_, since) in self.seen.items() if now - since > limit]


def beat(sessions: sessionmaker[Session], instance_id: str, interval: float, watch: Watch) -> Beat:
    """Count a beat and release the claims of processes silent for three intervals by
    *watch*."""
    with transaction(sessions) as session:
        found = session.execute(
            update(Instance)
            .where(Instance.id == instance_id)
            .values(heartbeat_at=database_now(session), beats=Instance.beats + 1)
        ).rowcount  # type: ignore[attr-defined]
        if not found:
            # Otherwise every claim we make from now on would look like an orphan's and be
            # given back at the next beat, while we are still sending it.
            _join(session, instance_id)
        others = session.execute(
            select(Instance.id, Instance.beats).where(Instance.id != instance_id)
        )
        beats = {peer: count for peer, count in others}
        dead = watch.silent(beats, interval * MISSED_BEATS)
        if dead:
            log.warning("silent for %d heartbeats, its work is taken over: %s", MISSED_BEATS, dead)
            release_claims(session, dead)
            session.execute(delete(Instance).where(Instance.id.in_(dead)))
        release_orphans(session)
    if not found:
        log.warning("this process was taken for dead and its work given to others; joined again")
    return Beat(len(dead), not found)


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
    chosen = lock_rows(candidates, session, model)
    if session.get_bind().dialect.name == "postgresql":
        # PostgreSQL may run an IN subquery again for each row it updates, each run skipping
        # the rows this UPDATE has already taken: its LIMIT would not hold, and one claim
        # took a whole backlog. Chosen once, in a materialized CTE, the LIMIT holds.
        picked = chosen.cte("picked").prefix_with("MATERIALIZED", dialect="postgresql")
        chosen = select(picked.c.id)
    return list(
        session.scalars(
            update(model)
            .where(model.id.in_(chosen), *still_free)
            .values(**taken)
            .returning(model.id)
            .execution_options(synchronize_session=False)
        )
    )


def lock_rows(statement, session: Session, model: Any = None):  # type: ignore[no-untyped-def]
    """``FOR UPDATE SKIP LOCKED`` (of *model*'s rows, when the statement joins others) on
    PostgreSQL, so processes never claim the same rows; SQLite serialises writers itself."""
    if session.get_bind().dialect.name == "postgresql":
        return statement.with_for_update(skip_locked=True, of=model)
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
