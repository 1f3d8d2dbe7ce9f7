"""What a delivery worker does when something other than the smarthost fails: a batch that
could not be sent goes back to the queue with back-off, and the outcome of a batch that was
sent is recorded however long the database takes, never by sending it again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import BindParameter, ColumnElement, bindparam, select, update
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.config import DeliveryConfig
from listserv.delivery.smtp_terms import Result
from listserv.store.db import error_line, transaction
from listserv.store.models import Delivery, utcnow

if TYPE_CHECKING:
    from listserv.delivery.worker import Batch

log = logging.getLogger(__name__)


def retry_delay(config: DeliveryConfig, attempts: int) -> float:
    schedule = config.retry_schedule
    return schedule[min(attempts, len(schedule) - 1)]


def still_ours(claimer: str | BindParameter[str]) -> ColumnElement[bool]:
    """The batch's row is still being sent by the process that claimed it."""
    return (Delivery.status == "sending") & (Delivery.claimed_by == claimer)


def ours_or_given_back(claimer: str | BindParameter[str]) -> ColumnElement[bool]:
    """Ours still, or given back (we were thought dead) and not taken since: a batch another
    process has claimed is left to it, and what we sent adds no retries or failures."""
    return still_ours(claimer) | ((Delivery.status == "queued") & Delivery.claimed_by.is_(None))


# Built once: it is asked before every batch is sent.
STILL_CLAIMED = select(Delivery.id).where(
    Delivery.id == bindparam("batch"), still_ours(bindparam("claimer"))
)


def still_claimed(session: Session, batch: Batch) -> bool:
    found = session.connection().execute(
        STILL_CLAIMED, {"batch": batch.id, "claimer": batch.claimed_by}
    )
    return found.first() is not None


def release(app: App, batch: Batch, error: str) -> None:
    """Give a batch that could not be sent (an unexpected error before or while sending) back
    to the queue, with back-off like a temporary failure, unless another process has taken
    it over meanwhile; past ``give_up_after`` it is failed."""
    config = app.config.delivery
    now = utcnow()
    values: dict[str, object] = {
        "status": "queued",
        "claimed_by": None,
        "attempts": batch.attempts + 1,
        "next_attempt_at": now + timedelta(seconds=retry_delay(config, batch.attempts)),
        "last_error": error[:2000],
    }
    if (now - batch.created_at).total_seconds() >= config.give_up_after:
        values |= {"status": "failed", "finished_at": now, "last_error": f"gave up: {error}"[:2000]}
    with transaction(app.sessions) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id == batch.id, still_ours(batch.claimed_by))
            .values(values)
        )


def record_status_only(app: App, batch: Batch, result: Result, error: str) -> None:
    """The last resort for a batch that was sent but whose full outcome cannot be recorded:
    its own status, so that it is never sent again. Recipients that failed are not kept."""
    with transaction(app.sessions) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id == batch.id, ours_or_given_back(batch.claimed_by))
            .values(
                status="sent" if result.accepted else "failed",
                attempts=batch.attempts + 1,
                finished_at=utcnow(),
                claimed_by=None,
                last_error=f"outcome recorded only in part: {error}"[:2000],
            )
        )


# Attempts at recording the whole outcome of a sent batch before settling for its status.
FULL_RECORD_ATTEMPTS = 5


async def persist(app: App, batch: Batch, step: Callable[[int], None], what: str) -> None:
    """Run *step* (given the attempt number) until it succeeds, backing off along
    ``retry_schedule`` between attempts: a database that is down, or a write that keeps
    failing, is neither hammered nor left with the batch claimed for good."""
    for attempt in itertools.count():
        try:
            await asyncio.to_thread(step, attempt)
            return
        except Exception as error:
            delay = retry_delay(app.config.delivery, attempt)
            log.warning(
                "delivery %s: could not %s (%s); trying again in %g s",
                batch.id,
                what,
                error_line(error)[:500],
                delay,
            )
            await asyncio.sleep(delay)


async def record_sent(
    app: App, batch: Batch, result: Result, record: Callable[[App, Batch, Result], None]
) -> None:
    """Record the outcome of a batch that was handed to the smarthost with *record*. The
    batch is never given back to the queue, so bookkeeping that fails never sends it again;
    after ``FULL_RECORD_ATTEMPTS`` failures only its status is written."""
    failures: list[str] = []

    def step(attempt: int) -> None:
        if attempt < FULL_RECORD_ATTEMPTS:
            try:
                record(app, batch, result)
            except Exception as error:
                failures.append(error_line(error)[:500])
                raise
        else:
            record_status_only(app, batch, result, failures[-1] if failures else "")

    await persist(app, batch, step, "record its outcome")
