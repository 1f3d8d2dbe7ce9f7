"""Senders: where a delivery worker hands a batch's SMTP transactions. ``SmtpSender`` keeps
one connection to the smarthost open across transactions (``smtp_client``, pipelined);
``OutboxSender`` writes each transaction to a file instead, for trying the server where there
is no MTA. Both answer with a ``Result`` per recipient and never raise for a refusal or a
broken connection."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from listserv.app import App
from listserv.config import DeliveryConfig, host_port
from listserv.delivery.smtp_client import SmtpConnection
from listserv.delivery.smtp_terms import LOST, Result, SmtpError, data_payload
from listserv.store.models import utcnow


class SmtpSender:
    """One connection to the smarthost, kept open across transactions."""

    # Personalized copies come to ``send_each`` as DATA payloads: they are made from a post
    # dot-stuffed once (``Personalized.copies``), not each scanned again here.
    dot_stuffed = True

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
        return await self._run(
            recipients,
            lambda connection, result: connection.send(mail_from, recipients, payload, result),
        )

    async def send_each(self, copies: list[tuple[str, str, bytes]]) -> Result:
        """One transaction per (envelope sender, recipient, DATA payload)."""
        return await self._run(
            [rcpt for _, rcpt, _ in copies],
            lambda connection, result: connection.send_each(copies, result),
        )

    async def _run(
        self,
        recipients: list[str],
        transactions: Callable[[SmtpConnection, Result], Awaitable[None]],
    ) -> Result:
        result = Result()
        while True:
            fresh = self.connection is None
            try:
                if self.connection is None:
                    self.connection = await SmtpConnection.connect(
                        self.host, self.port, self.timeout, self.helo_name
                    )
                replies_before = self.connection.replies.count
                await transactions(self.connection, result)
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


# One numbering for every outbox writer of the process: each worker has its own sender, and
# numbers of their own collided within a second.
_OUTBOX_NUMBERS = itertools.count(1)


class OutboxSender:
    """Writes each transaction to a file in a directory, envelope first: for trying the
    server where there is no MTA."""

    dot_stuffed = False  # copies come to ``send_each`` as messages

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def send(self, mail_from: str, recipients: list[str], raw: bytes) -> Result:
        envelope = f"X-Envelope-From: <{mail_from}>\r\nX-Envelope-To: {', '.join(recipients)}\r\n"
        await asyncio.to_thread(self._write_new_file, envelope.encode() + raw)
        return Result(accepted=list(recipients))

    def _write_new_file(self, content: bytes) -> None:
        """One new file per transaction: never an existing one overwritten (mode "x")."""
        while True:
            name = f"{utcnow():%Y%m%d-%H%M%S}-{os.getpid()}-{next(_OUTBOX_NUMBERS)}.eml"
            try:
                with open(self.directory / name, "xb") as file:
                    file.write(content)
                return
            except FileExistsError:
                continue

    async def send_each(self, copies: list[tuple[str, str, bytes]]) -> Result:
        result = Result()
        for mail_from, rcpt, raw in copies:
            result.accepted.extend((await self.send(mail_from, [rcpt], raw)).accepted)
        return result

    async def close(self) -> None:
        return None


Sender = SmtpSender | OutboxSender


def make_sender(app: App) -> Sender:
    delivery = app.config.delivery
    if delivery.outbox:
        return OutboxSender(app.config.resolve(delivery.outbox))
    return SmtpSender(delivery, app.domain)
