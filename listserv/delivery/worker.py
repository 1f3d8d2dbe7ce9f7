"""Delivery: one claimer takes due batches from the queue (several per transaction) and hands
them to ``[delivery] connections`` workers; each worker sends a batch in one SMTP transaction
over its own kept-open connection to the smarthost or writes it to the outbox directory
(``senders``), then records what became of every recipient.

A refused RCPT never fails the rest of its batch. A temporary failure (4xx, a dropped
connection) queues the recipients that were not refused again, with back-off, until
``give_up_after``; a permanent one (5xx) is recorded against the recipient
(``record_failures``) and never retried on its own. ``deliver_one`` is where one batch becomes
SMTP transactions: one for the batch, or for personalized mail one per recipient, pipelined
back to back on the same connection. The copies of a batch are made (and DKIM-signed) in a
pool of one thread per core, so the workers of one process sign on every core (OpenSSL's RSA
releases the GIL), while the event loop writes SMTP; the pool is the workers' own, so their
bookkeeping (``asyncio.to_thread``) never queues behind signing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.delivery import journal
from listserv.delivery.forget import forget_sent_secret
from listserv.delivery.personalize import Personalized, load_payload
from listserv.delivery.recovery import (
    ours_or_given_back,
    persist,
    record_sent,
    release,
    retry_delay,
    still_claimed,
)
from listserv.delivery.senders import Sender, make_sender
from listserv.delivery.smtp_terms import Result
from listserv.mail.addresses import domain_of
from listserv.store.claims import claim_rows, nap
from listserv.store.db import error_line, transaction
from listserv.store.models import Delivery, Outgoing, RecipientFailure, utcnow

log = logging.getLogger(__name__)
# Batches claimed in one transaction, and waiting for a worker at most, per connection: one
# claim a batch cost as much as the rest of sending a small post.
CLAIMED_AHEAD = 4


@dataclass(frozen=True)
class Batch:
    id: int
    outgoing_id: int
    mail_from: str
    recipients: list[str]
    attempts: int
    created_at: datetime
    # The process that claimed it: only that process may record its outcome.
    claimed_by: str = ""


@contextlib.contextmanager
def bookkeeping(app: App) -> Iterator[Session]:
    """A transaction recording delivery progress. On PostgreSQL its commit does not wait for
    the WAL flush (two per batch would otherwise bound the send rate): a database crash can
    only lose the latest progress, and that means sending a batch again, never losing one."""
    with transaction(app.sessions) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        yield session


def claim_batches(app: App, instance_id: str, limit: int) -> list[Batch]:
    """Take up to *limit* due batches for this process, in one short transaction."""
    now = utcnow()
    with bookkeeping(app) as session:
        due = (
            select(Delivery.id)
            .where(Delivery.status == "queued", Delivery.next_attempt_at <= now)
            .order_by(Delivery.next_attempt_at, Delivery.id)
            .limit(limit)
        )
        queued = Delivery.status == "queued"
        ids = claim_rows(session, Delivery, due, queued, status="sending", claimed_by=instance_id)
        if not ids:
            return []
        rows = session.execute(
            select(
                Delivery.id,
                Delivery.outgoing_id,
                Outgoing.mail_from,
                Delivery.recipients,
                Delivery.attempts,
                Delivery.created_at,
            )
            .join(Outgoing, Outgoing.id == Delivery.outgoing_id)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.next_attempt_at, Delivery.id)
        )
        return [
            Batch(id, outgoing, mail_from, recipients.split("\n"), attempts, created, instance_id)
            for id, outgoing, mail_from, recipients, attempts, created in rows
        ]


# The batch a worker sent, built once (it is written after every batch sent), its SET taken
# from the parameters.
THIS_BATCH = update(Delivery).where(
    Delivery.id == bindparam("batch"), ours_or_given_back(bindparam("claimer"))
)


def record(app: App, batch: Batch, result: Result) -> None:
    """Store the outcome of one transaction for every recipient of the batch: accepted ones
    are done, temporary failures are queued again with back-off (or given up on), permanent
    ones are recorded per recipient."""
    config = app.config.delivery
    now = utcnow()
    attempts = batch.attempts + 1
    gave_up = (now - batch.created_at).total_seconds() >= config.give_up_after
    failures = dict(result.permanent)
    retry: dict[str, tuple[int, str]] = {}
    if gave_up:
        failures.update(
            {r: (c, f"gave up retrying: {m}") for r, (c, m) in result.temporary.items()}
        )
    else:
        retry = result.temporary
    next_attempt_at = now + timedelta(seconds=retry_delay(config, batch.attempts))
    journal.outcome(batch, result, retry, failures, next_attempt_at)
    which = {"batch": batch.id, "claimer": batch.claimed_by}
    with bookkeeping(app) as session:
        connection = session.connection()
        if retry and not result.accepted and not failures:
            # Nobody got it and nothing is final: the same batch waits for its next attempt.
            connection.execute(
                THIS_BATCH,
                which
                | {
                    "status": "queued",
                    "attempts": attempts,
                    "claimed_by": None,
                    "next_attempt_at": next_attempt_at,
                    "last_error": _first_error(retry),
                },
            )
            return
        done = connection.execute(
            THIS_BATCH,
            which
            | {
                "status": "sent" if result.accepted else "failed",
                "attempts": attempts,
                "finished_at": now,
                "claimed_by": None,
                "last_error": _first_error(failures) if failures else "",
            },
        )
        if not done.rowcount:
            return  # another process owns it now, or its message was deleted meanwhile
        if retry:
            connection.execute(
                insert(Delivery).values(
                    outgoing_id=batch.outgoing_id,
                    recipients="\n".join(retry),
                    count=len(retry),
                    status="queued",
                    attempts=attempts,
                    created_at=batch.created_at,
                    next_attempt_at=next_attempt_at,
                    last_error=_first_error(retry),
                )
            )
        if failures:
            record_failures(app, session, batch.outgoing_id, failures, now)
        if not retry:
            forget_sent_secret(session, batch.outgoing_id)


def record_failures(
    app: App,
    session: Session,
    outgoing_id: int,
    failures: dict[str, tuple[int, str]],
    now: datetime,
) -> None:
    """Recipients that will not get this message: kept for ``queue status`` and
    ``queue retry``, and counted against the member like a bounce (``App.on_refused``)."""
    session.execute(
        insert(RecipientFailure),
        [
            {
                "outgoing_id": outgoing_id,
                "address": address,
                "domain": domain_of(address),
                "code": code,
                "reason": reason[:2000],
                "failed_at": now,
                "resent": False,
            }
            for address, (code, reason) in failures.items()
        ],
    )
    if app.on_refused is not None:
        app.on_refused(app, session, outgoing_id, failures)


def _first_error(errors: dict[str, tuple[int, str]]) -> str:
    address, (code, reason) = next(iter(errors.items()))
    return f"{address}: {code} {reason}"[:2000]


async def deliver_one(
    sender: Sender, batch: Batch, payload: bytes | Personalized, copier: Executor
) -> Result:
    """Send one batch: one transaction for the batch, or one per recipient for a
    personalized post (personalize.py), whose copies are made in *copier*'s threads, off
    the event loop that the other connections' round trips wait on."""
    if isinstance(payload, Personalized):
        result = Result()
        loop = asyncio.get_running_loop()
        for group in payload.in_memory_bounded_groups(batch.recipients):
            copies = await loop.run_in_executor(copier, payload.copies, group, sender.dot_stuffed)
            sent = await sender.send_each(copies)
            del copies
            result.accepted += sent.accepted
            result.temporary |= sent.temporary
            result.permanent |= sent.permanent
        return result
    return await sender.send(batch.mail_from, batch.recipients, payload)


async def run_claimer(
    app: App,
    instance_id: str,
    queue: asyncio.Queue[Batch | None],
    wakeup: asyncio.Event,
    poll: float,
) -> None:
    """Keep the workers' queue filled: claim as many batches as it holds in one transaction,
    hand them over as the workers take them, and nap when nothing is due."""
    limit = queue.maxsize
    while True:
        wakeup.clear()
        try:
            batches = await asyncio.to_thread(claim_batches, app, instance_id, limit)
        except Exception:
            log.exception("could not claim deliveries")
            batches = []
        for batch in batches:
            await queue.put(batch)
        if len(batches) < limit:
            await nap(wakeup, poll)


def ready_to_send(app: App, batch: Batch, loaded: int) -> tuple[bool, bytes | Personalized | None]:
    """Whether the batch is still ours, and its message unless it is the one *loaded*
    already: one session for both, asked before every batch."""
    with app.sessions() as session:
        if not still_claimed(session, batch):
            return False, None
        if loaded == batch.outgoing_id:
            return True, None
        return True, load_payload(app, session, batch.outgoing_id)


async def run_worker(app: App, queue: asyncio.Queue[Batch | None], copier: Executor) -> None:
    """Send the batches handed over on *queue* over one connection, until ``None``."""
    sender = make_sender(app)
    cached: tuple[int, bytes | Personalized] = (0, b"")
    try:
        while True:
            if queue.empty():
                # Nothing to do: let the smarthost have its connection back meanwhile.
                await sender.close()
            batch = await queue.get()
            if batch is None:
                return
            try:
                ours, payload = await asyncio.to_thread(ready_to_send, app, batch, cached[0])
                if not ours:
                    # Given to another process while it waited here (we were stalled and
                    # taken for dead): that one sends it.
                    log.warning("delivery %s was taken over meanwhile: not sent here", batch.id)
                    continue
                if payload is not None:
                    cached = (batch.outgoing_id, payload)
                result = await deliver_one(sender, batch, cached[1], copier)
            except Exception as error:
                log.exception("delivery %s failed unexpectedly", batch.id)
                reason = error_line(error)[:500]
                requeue = lambda _, b=batch, why=reason: release(app, b, why)  # noqa: E731
                await persist(app, batch, requeue, "requeue it")
                continue
            await record_sent(app, batch, result, record)
    finally:
        await sender.close()


async def run_delivery(
    app: App, instance_id: str, wakeup: asyncio.Event, stopping: asyncio.Event, poll: float
) -> None:
    """Run ``[delivery] connections`` workers fed by one claimer until *stopping* is set;
    then the batches already claimed are sent (so a clean stop sends nothing twice) and the
    workers end. Cancelling cuts that short; ``unregister_instance`` gives back what is left."""
    connections = app.config.delivery.connections
    queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=connections * CLAIMED_AHEAD)
    claimer = asyncio.create_task(run_claimer(app, instance_id, queue, wakeup, poll))
    # More threads than cores would only take turns at the GIL between RSA operations.
    copier = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="copies")
    workers = [asyncio.create_task(run_worker(app, queue, copier)) for _ in range(connections)]
    try:
        await stopping.wait()
        claimer.cancel()
        await asyncio.gather(claimer, return_exceptions=True)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    finally:
        for task in [claimer, *workers]:
            task.cancel()
        await asyncio.gather(claimer, *workers, return_exceptions=True)
        # Copies being made for a cancelled worker are not waited for: nobody sends them.
        copier.shutdown(wait=False, cancel_futures=True)
