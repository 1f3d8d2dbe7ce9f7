"""Delivery: workers claim queued batches, send each in one SMTP transaction to the smarthost
(or write it to the outbox directory), and record what became of every recipient.

A refused RCPT never fails the rest of its batch. A temporary failure (4xx, a dropped
connection) queues the recipients that were not accepted again, with back-off; a permanent one
(5xx) is recorded against the recipient and never retried on its own.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import case, func, insert, select

from .addresses import domain_of
from .app import App
from .claims import lock_rows, nap
from .config import DeliveryConfig, host_port
from .db import transaction
from .models import Delivery, Outgoing, RecipientFailure, utcnow
from .smtp_client import LOST, Result, SmtpConnection, SmtpError, data_payload

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    id: int
    outgoing_id: int
    mail_from: str
    recipients: list[str]
    attempts: int
    created_at: datetime


class SmtpSender:
    """One connection to the smarthost, kept open across transactions."""

    def __init__(self, config: DeliveryConfig, helo_name: str) -> None:
        self.host, self.port = host_port(config.smarthost, "delivery.smarthost")
        self.timeout = config.timeout
        self.helo_name = helo_name
        self.connection: SmtpConnection | None = None
        self.raw = b""
        self.payload = b""

    def _payload(self, raw: bytes) -> bytes:
        # Workers hand in the same bytes object for every batch of a message.
        if raw is not self.raw:
            self.raw, self.payload = raw, data_payload(raw)
        return self.payload

    async def send(self, mail_from: str, recipients: list[str], raw: bytes) -> Result:
        payload = self._payload(raw)
        result = Result()
        while True:
            fresh = self.connection is None
            try:
                if self.connection is None:
                    self.connection = await SmtpConnection.connect(
                        self.host, self.port, self.timeout, self.helo_name
                    )
                replies_before = self.connection.replies.count
                await self.connection.send(mail_from, recipients, payload, result)
                return result
            except (SmtpError, OSError, TimeoutError) as error:
                stale = not fresh and self.connection.replies.count == replies_before  # type: ignore[union-attr]
                self.abort()
                if stale:
                    continue  # the server had closed the idle connection: use a new one now
                return result.fail(result.undecided(recipients), *_temporary(error))

    def abort(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            connection.abort()

    async def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            await connection.quit()


def _temporary(error: Exception) -> tuple[int, str]:
    """A broken connection or an unusable smarthost says nothing about the recipients: their
    delivery is retried whatever the code."""
    if isinstance(error, SmtpError):
        return (error.code if error.code < 500 else LOST), error.text
    return LOST, f"connection failed: {error or type(error).__name__}"


class OutboxSender:
    """Writes each transaction to a file in a directory, envelope first: for trying the
    server where there is no MTA."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.counter = itertools.count(1)
        directory.mkdir(parents=True, exist_ok=True)

    async def send(self, mail_from: str, recipients: list[str], raw: bytes) -> Result:
        envelope = f"X-Envelope-From: <{mail_from}>\r\nX-Envelope-To: {', '.join(recipients)}\r\n"
        name = f"{utcnow():%Y%m%d-%H%M%S}-{os.getpid()}-{next(self.counter)}.eml"
        await asyncio.to_thread((self.directory / name).write_bytes, envelope.encode() + raw)
        return Result(accepted=list(recipients))

    async def close(self) -> None:
        return None


Sender = SmtpSender | OutboxSender


def make_sender(app: App) -> Sender:
    delivery = app.config.delivery
    if delivery.outbox:
        return OutboxSender(app.config.resolve(delivery.outbox))
    return SmtpSender(delivery, app.domain)


def claim(app: App, instance_id: str) -> Batch | None:
    with transaction(app.sessions) as session:
        query = (
            select(Delivery.id)
            .where(Delivery.status == "queued", Delivery.next_attempt_at <= utcnow())
            .order_by(Delivery.next_attempt_at, Delivery.id)
            .limit(1)
        )
        delivery_id = session.scalar(lock_rows(query, session))
        if delivery_id is None:
            return None
        delivery = session.get(Delivery, delivery_id)
        assert delivery is not None
        delivery.status = "sending"
        delivery.claimed_by = instance_id
        mail_from = session.scalar(
            select(Outgoing.mail_from).where(Outgoing.id == delivery.outgoing_id)
        )
        return Batch(
            delivery.id,
            delivery.outgoing_id,
            mail_from or "",
            delivery.recipients.split("\n"),
            delivery.attempts,
            delivery.created_at,
        )


def load_raw(app: App, outgoing_id: int) -> bytes:
    with app.sessions() as session:
        return session.scalar(select(Outgoing.raw).where(Outgoing.id == outgoing_id)) or b""


def retry_delay(config: DeliveryConfig, attempts: int) -> float:
    schedule = config.retry_schedule
    return schedule[min(attempts, len(schedule) - 1)]


def record(app: App, batch: Batch, result: Result) -> None:
    """Store the outcome of one transaction for every recipient of the batch."""
    config = app.config.delivery
    now = utcnow()
    attempts = batch.attempts + 1
    gave_up = (now - batch.created_at).total_seconds() >= config.give_up_after  # type: ignore[operator]
    failures = dict(result.permanent)
    retry = {}
    if gave_up:
        failures.update(
            {r: (c, f"gave up retrying: {m}") for r, (c, m) in result.temporary.items()}
        )
    else:
        retry = result.temporary
    with transaction(app.sessions) as session:
        delivery = session.get(Delivery, batch.id)
        if delivery is None:
            return
        if retry and not result.accepted and not failures:
            delivery.status = "queued"
            delivery.attempts = attempts
            delivery.claimed_by = None
            delivery.next_attempt_at = now + timedelta(seconds=retry_delay(config, batch.attempts))
            delivery.last_error = _first_error(retry)
            return
        delivery.status = "sent" if result.accepted else "failed"
        delivery.attempts = attempts
        delivery.finished_at = now
        delivery.claimed_by = None
        if retry:
            session.add(
                Delivery(
                    outgoing_id=batch.outgoing_id,
                    recipients="\n".join(retry),
                    count=len(retry),
                    attempts=attempts,
                    created_at=batch.created_at,
                    next_attempt_at=now + timedelta(seconds=retry_delay(config, batch.attempts)),
                    last_error=_first_error(retry),
                )
            )
        if failures:
            delivery.last_error = _first_error(failures)
            session.execute(
                insert(RecipientFailure),
                [
                    {
                        "outgoing_id": batch.outgoing_id,
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


def _first_error(errors: dict[str, tuple[int, str]]) -> str:
    address, (code, reason) = next(iter(errors.items()))
    return f"{address}: {code} {reason}"[:2000]


async def deliver_one(app: App, sender: Sender, batch: Batch, raw: bytes) -> None:
    result = await sender.send(batch.mail_from, batch.recipients, raw)
    await asyncio.to_thread(record, app, batch, result)


@dataclass
class Workers:
    """What the delivery workers of one process share."""

    app: App
    instance_id: str
    wakeup: asyncio.Event
    stopping: asyncio.Event
    poll: float
    claim_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


async def run_worker(workers: Workers) -> None:
    """Claim and send batches until *stopping* is set; a batch under way is finished first,
    so a clean stop sends nothing twice."""
    app = workers.app
    sender = make_sender(app)
    cached: tuple[int, bytes] = (0, b"")
    try:
        while not workers.stopping.is_set():
            async with workers.claim_lock:
                batch = await asyncio.to_thread(claim, app, workers.instance_id)
                if batch is None:
                    workers.wakeup.clear()
            if batch is None:
                # Nothing to do: let the smarthost have its connection back meanwhile.
                await sender.close()
                await nap(workers.wakeup, workers.poll)
                continue
            if cached[0] != batch.outgoing_id:
                cached = (
                    batch.outgoing_id,
                    await asyncio.to_thread(load_raw, app, batch.outgoing_id),
                )
            await deliver_one(app, sender, batch, cached[1])
    finally:
        await sender.close()


async def run_delivery(
    app: App, instance_id: str, wakeup: asyncio.Event, stopping: asyncio.Event, poll: float
) -> None:
    """Run ``[delivery] connections`` workers until *stopping* is set (or cancelled)."""
    shared = Workers(app, instance_id, wakeup, stopping, poll)
    workers = [
        asyncio.create_task(run_worker(shared)) for _ in range(app.config.delivery.connections)
    ]
    try:
        await asyncio.gather(*workers)
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


def resend_failed(app: App, domain: str | None = None) -> int:
    """Queue failed recipients again (``queue retry``); returns how many."""
    config = app.config.delivery
    with transaction(app.sessions) as session:
        query = select(RecipientFailure).where(RecipientFailure.resent.is_(False))
        if domain:
            query = query.where(RecipientFailure.domain == domain.lower())
        failures = list(session.scalars(query.order_by(RecipientFailure.outgoing_id)))
        by_outgoing: dict[int, list[str]] = {}
        for failure in failures:
            by_outgoing.setdefault(failure.outgoing_id, []).append(failure.address)
            failure.resent = True
        now = utcnow()
        for outgoing_id, addresses in by_outgoing.items():
            for start in range(0, len(addresses), config.max_recipients):
                chunk = addresses[start : start + config.max_recipients]
                session.add(
                    Delivery(
                        outgoing_id=outgoing_id,
                        recipients="\n".join(chunk),
                        count=len(chunk),
                        created_at=now,
                        next_attempt_at=now,
                    )
                )
        session.info["wake_delivery"] = True
    return len(failures)


def queue_counts(app: App) -> dict[str, int]:
    """Recipients by state: queued (due now), deferred (waiting to retry), sending, sent,
    failed."""
    state = case(
        (
            (Delivery.status == "queued") & (Delivery.attempts > 0),
            "deferred",
        ),
        else_=Delivery.status,
    )
    counts = {"queued": 0, "deferred": 0, "sending": 0, "sent": 0, "failed": 0}
    with app.sessions() as session:
        for name, total in session.execute(select(state, func.sum(Delivery.count)).group_by(state)):
            counts[name] = counts.get(name, 0) + int(total or 0)
        counts["failed"] = (
            session.scalar(
                select(func.count())
                .select_from(RecipientFailure)
                .where(RecipientFailure.resent.is_(False))
            )
            or 0
        )
    return counts
