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
from datetime import timedelta
from pathlib import Path

import aiosmtplib
from sqlalchemy import case, func, insert, select

from .addresses import domain_of
from .app import App
from .bounces import delivery_failures
from .claims import lock_rows, nap
from .config import DeliveryConfig, host_port
from .db import transaction
from .models import Delivery, Outgoing, RecipientFailure, utcnow
from .personalize import Personalized, Transport, load_payload, transport_for

log = logging.getLogger(__name__)


@dataclass
class Result:
    """What the receiving server said of each recipient of one transaction."""

    accepted: list[str] = field(default_factory=list)
    temporary: dict[str, tuple[int, str]] = field(default_factory=dict)
    permanent: dict[str, tuple[int, str]] = field(default_factory=dict)

    @classmethod
    def from_replies(cls, replies: dict[str, tuple[int, str]]) -> Result:
        result = cls()
        for rcpt, (code, reason) in replies.items():
            if code < 400:
                result.accepted.append(rcpt)
            else:
                result.fail_all([rcpt], code, reason)
        return result

    def fail_all(self, recipients: list[str], code: int, reason: str) -> Result:
        target = self.temporary if code < 500 else self.permanent
        for rcpt in recipients:
            target[rcpt] = (code, reason)
        return self


@dataclass(frozen=True)
class Batch:
    id: int
    outgoing_id: int
    mail_from: str
    recipients: list[str]
    attempts: int
    created_at: object


class SmtpSender:
    """One connection to the smarthost, reused across transactions."""

    def __init__(self, config: DeliveryConfig) -> None:
        self.host, self.port = host_port(config.smarthost, "delivery.smarthost")
        self.timeout = config.timeout
        self.client: aiosmtplib.SMTP | None = None

    async def _connect(self) -> aiosmtplib.SMTP:
        if self.client is None or not self.client.is_connected:
            self.client = aiosmtplib.SMTP(
                hostname=self.host, port=self.port, timeout=self.timeout, start_tls=False
            )
            await self.client.connect()
            await self.client.ehlo()
        return self.client

    async def send(self, mail_from: str, recipients: list[str], raw: bytes) -> Result:
        result = Result()
        try:
            client = await self._connect()
            await client.mail(mail_from)
            for rcpt in recipients:
                try:
                    await client.rcpt(rcpt)
                    result.accepted.append(rcpt)
                except aiosmtplib.SMTPRecipientRefused as refused:
                    target = result.temporary if refused.code < 500 else result.permanent
                    target[rcpt] = (refused.code, refused.message)
            if result.accepted:
                await client.data(raw)
            else:
                await client.rset()
        except aiosmtplib.SMTPResponseException as error:
            await self.close()
            pending = [r for r in recipients if r not in result.permanent]
            result.accepted.clear()
            for rcpt in pending:
                result.temporary.pop(rcpt, None)
            return result.fail_all(pending, error.code, error.message)
        except (aiosmtplib.SMTPException, OSError) as error:
            await self.close()
            pending = [r for r in recipients if r not in result.permanent]
            result.accepted.clear()
            return result.fail_all(pending, 451, f"connection failed: {error}")
        return result

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()


class OutboxSender:
    """Writes each transaction to a file in a directory, envelope first: for trying the
    server where there is no MTA."""

    # Shared by every worker of the process: names made in the same second must differ.
    counter = itertools.count(1)

    def __init__(self, directory: Path) -> None:
        self.directory = directory
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
    return SmtpSender(delivery)


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
            # A refusal at delivery counts against the member like a bounce (bounces.py).
            delivery_failures(app, session, batch.outgoing_id, failures)


def _first_error(errors: dict[str, tuple[int, str]]) -> str:
    address, (code, reason) = next(iter(errors.items()))
    return f"{address}: {code} {reason}"[:2000]


async def deliver_one(
    app: App, sender: Sender, batch: Batch, payload: bytes | Personalized, transport: Transport
) -> None:
    if isinstance(payload, Personalized):  # one transaction per recipient (personalize.py)
        result = Result.from_replies(await payload.send(transport, batch.recipients))
    else:
        result = await sender.send(batch.mail_from, batch.recipients, payload)
    await asyncio.to_thread(record, app, batch, result)


async def run_worker(
    app: App, instance_id: str, wakeup: asyncio.Event, claim_lock: asyncio.Lock, poll: float
) -> None:
    sender = make_sender(app)
    transport = transport_for(app, sender)
    cached: tuple[int, bytes | Personalized] = (0, b"")
    try:
        while True:
            async with claim_lock:
                batch = await asyncio.to_thread(claim, app, instance_id)
                if batch is None:
                    wakeup.clear()
            if batch is None:
                await nap(wakeup, poll)
                continue
            if cached[0] != batch.outgoing_id:
                cached = (
                    batch.outgoing_id,
                    await asyncio.to_thread(load_payload, app, batch.outgoing_id),
                )
            await deliver_one(app, sender, batch, cached[1], transport)
    finally:
        await sender.close()
        await transport.close()


async def run_delivery(app: App, instance_id: str, wakeup: asyncio.Event, poll: float) -> None:
    """Run ``[delivery] connections`` workers until cancelled."""
    claim_lock = asyncio.Lock()
    workers = [
        asyncio.create_task(run_worker(app, instance_id, wakeup, claim_lock, poll))
        for _ in range(app.config.delivery.connections)
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
