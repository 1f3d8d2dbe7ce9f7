"""Intake: the SMTP/LMTP server. It only checks, stores and answers.

RCPT is refused with 550 for anything but an address of one of our lists (never an open
relay); DATA is answered 250 only once the message is committed to the inbox, 451 when the
database cannot take it, and 552 when it is larger than ``max_message_size``. LMTP answers
once per recipient.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.exc import SQLAlchemyError

from listserv.app import App
from listserv.config import ConfigError, host_port
from listserv.intake import addrspec, journal, prebuilt, xforward
from listserv.intake.committer import Flag, GroupCommitter, insert_rows, received
from listserv.intake.limits import refusal
from listserv.intake.missing import with_required_headers
from listserv.intake.names import ListNames
from listserv.mail.addresses import InvalidAddress, Target, normalize, parse_recipient, redacted

log = logging.getLogger(__name__)
# A further check of a recipient address of some role (is this alias live?), run at RCPT.
RcptCheck = Callable[[App, Target], bool]


class IntakeHandler:
    def __init__(
        self,
        app: App,
        roles: set[str],
        on_stored: Callable[[], None],
        checks: dict[str, RcptCheck] | None = None,
        waiting_flag: Flag | None = None,
    ) -> None:
        self.app = app
        self.roles = roles
        self.checks = checks or {}
        self.on_stored = on_stored
        self.max_recipients = app.config.server.max_recipients
        self.lmtp = app.config.server.protocol == "lmtp"
        self.list_names = ListNames(app.sessions)
        self.committer = GroupCommitter(app.sessions, waiting_flag)
        self.relays = xforward.Relays(app.config.server.trusted_relays)

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list
    ) -> list[str]:
        session.host_name = hostname
        return xforward.advertise(session, responses, self.relays)

    async def _target(self, address: str) -> Target | None:
        target = parse_recipient(address, self.app.domain, await self.list_names.cached())
        if target is None or target.role not in self.roles:
            # Perhaps a list created since the names were read.
            names = await self.list_names.reread()
            target = parse_recipient(address, self.app.domain, names)
        return target

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return "452 4.5.3 Too many recipients"
        try:
            target = await self._target(address)
            if target is None or target.role not in self.roles:
                return "550 5.1.1 No such list address here"
            check = self.checks.get(target.role)
            if check is not None and not await asyncio.to_thread(check, self.app, target):
                return "550 5.1.1 No such list address here"
        except SQLAlchemyError:
            log.exception("database unavailable at RCPT")
            return "451 4.3.0 Temporary failure, try again later"
        if normalize(address) in envelope.rcpt_tos and not self.lmtp:
            return "250 2.1.5 OK (duplicate recipient, delivered once)"
        envelope.rcpt_tos.append(normalize(address))
        envelope.rcpt_options.append(options)
        return "250 2.1.5 OK"

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list
    ) -> str:
        if address and address != "<>":
            try:
                normalize(address)
            except InvalidAddress:
                return "553 5.1.7 Sender address is not valid"
        envelope.mail_from = address or ""
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        problem = refusal(raw, self.app.config.server)
        if problem is not None:
            return "\r\n".join([problem] * self._reply_count(envelope))
        raw = with_required_headers(raw, self.app.domain)
        client = xforward.client_of(session, raw, self.relays)
        try:
            message = received(
                envelope.mail_from or "", envelope.rcpt_tos, raw, client.addr, client.helo
            )
            ids = await self.committer.store(message)
        except SQLAlchemyError:
            log.exception("database unavailable at DATA")
            replies = ["451 4.3.0 Temporary failure, try again later"] * self._reply_count(envelope)
            return "\r\n".join(replies)
        self.on_stored()
        # Recipients may carry live tokens (NAME-confirm+TOKEN): never written to the log.
        rcpts = [redacted(rcpt) for rcpt in envelope.rcpt_tos]
        journal.accepted(ids, envelope.mail_from or "", rcpts, client)
        if self.lmtp:
            return "\r\n".join(
                f"250 2.0.0 <{rcpt}> queued as {i}"
                for rcpt, i in zip(envelope.rcpt_tos, ids, strict=True)
            )
        return f"250 2.0.0 OK queued as {ids[0]}"

    def _reply_count(self, envelope: Envelope) -> int:
        return len(envelope.rcpt_tos) if self.lmtp else 1


def store_messages(
    app: App,
    mail_from: str,
    rcpt_tos: list[str],
    raw: bytes,
    peer: str | None = None,
    helo: str | None = None,
    claimed_by: str | None = None,
) -> list[int]:
    """Commit *raw* to the inbox for each recipient, at once (``inject``: no SMTP sessions to
    group it with); returns the new ids in *rcpt_tos* order. *claimed_by* keeps the routers of
    running daemons off a message someone is about to process itself."""
    message = received(mail_from, rcpt_tos, raw, peer, helo, claimed_by)
    return insert_rows(app.sessions, [message])


class Connections:
    """The SMTP sessions under way, so a stop can wait for them to finish."""

    def __init__(self) -> None:
        self.active: set[asyncio.BaseProtocol] = set()
        self.idle = asyncio.Event()
        self.idle.set()

    def opened(self, protocol: asyncio.BaseProtocol) -> None:
        self.active.add(protocol)
        self.idle.clear()

    def closed(self, protocol: asyncio.BaseProtocol) -> None:
        self.active.discard(protocol)
        if not self.active:
            self.idle.set()


def tracked(cls: type[SMTP], connections: Connections, limit: int) -> type[SMTP]:
    class Tracked(cls):  # type: ignore[valid-type, misc]
        refused = False

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            if len(connections.active) >= limit:
                # Over [server] max_connections: told to come back (RFC 5321 3.8), and no
                # session is set up for it.
                self.refused = True
                transport.write(b"421 4.7.0 Too many connections, try again later\r\n")  # type: ignore[attr-defined]
                transport.close()
                return
            connections.opened(self)
            super().connection_made(transport)

        def connection_lost(self, error: Exception | None) -> None:
            if self.refused:
                return
            super().connection_lost(error)
            connections.closed(self)

    return Tracked


# aiosmtpd's refusals of a message while receiving it, worded once; LMTP owes one reply per
# recipient after DATA, or the MTA in front waits for the rest.
DATA_REFUSALS = {
    "552 Error: Too much mail data": "552 5.3.4 Message too big",
    "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.2 Line too long",
}


class PerRecipientLMTP(LMTP):
    async def push(self, status: str) -> None:
        ours = DATA_REFUSALS.get(status)
        if ours is not None and self.envelope is not None and self.envelope.rcpt_tos:
            status = "\r\n".join([ours] * len(self.envelope.rcpt_tos))
        await super().push(status)


class Intake:
    def __init__(self, app: App, handler: IntakeHandler) -> None:
        self.app = app
        self.handler = handler
        self.connections = Connections()
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        server = self.app.config.server
        lmtp = server.protocol == "lmtp"
        base = addrspec.with_plain_addresses(PerRecipientLMTP if lmtp else SMTP)
        protocol = journal.journaled(xforward.with_xforward(base))
        cls = tracked(protocol, self.connections, server.max_connections)
        if lmtp:
            # A line limit is the business of the MTA in front, which enforces its own.
            cls.line_length_limit = server.max_message_size + 2

        factory = prebuilt.factory(
            cls,
            self.handler,
            # Enforced while receiving: what is over the limit is never kept in memory.
            data_size_limit=server.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=server.domain,
            ident="listserv",
            timeout=server.idle_timeout,
        )
        host, port = host_port(server.listen, "server.listen")
        loop = asyncio.get_running_loop()
        try:
            self.server = await loop.create_server(factory, host=host, port=port)
        except OSError as error:
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise ConfigError(
                f"server.listen: cannot listen on {server.listen}: {reason}"
            ) from None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self, drain_seconds: float) -> None:
        """Take no new connections; wait for sessions under way to end, up to a limit."""
        if self.server is None:
            return
        self.server.close()
        try:
            await asyncio.wait_for(self.connections.idle.wait(), drain_seconds)
        except TimeoutError:
            log.warning("%d SMTP sessions still open at stop", len(self.connections.active))
            for protocol in list(self.connections.active):
                transport = getattr(protocol, "transport", None)
                if transport is not None:
                    transport.close()
