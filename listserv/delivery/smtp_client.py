"""The one SMTP client of listserv: one connection to the smarthost, many transactions, with
PIPELINING (RFC 2920) when the smarthost offers it. Delivery uses it both for batches (one
transaction, up to ``max_recipients`` RCPTs) and for personalized mail (one transaction per
recipient, each copy its own message).

Why our own client and not aiosmtplib: aiosmtplib does not pipeline. It sends a command and
waits for its reply, one round trip per RCPT, and its protocol object has no public way to
write several commands and then read their replies in order. Fanning a post out to 100,000
members is bounded by exactly those round trips. So for a batch this client writes MAIL, every
RCPT and DATA in one write, reads the replies in one pass, maps the n-th RCPT reply to the
n-th recipient, and writes the whole dot-stuffed message in one more write (TCP_NODELAY, so
nothing waits for a delayed ACK). For personalized copies it writes one copy's content
together with the next copy's MAIL, RCPT and DATA and reads their four replies in one pass:
one round trip per copy instead of four. Those round trips are driven from the protocol's
reply callback (``CopyPump``): the replies are parsed as they arrive and, when a copy's four
are in and usual, the next write goes out there and then, so the event loop does no task
switch, future or timer per copy (that machinery cost about as much as the rest of a copy's
SMTP work). Without PIPELINING it sends the same commands one at a time. The smarthost is
the local MTA, reached in the clear; STARTTLS would go into ``connect``.

Everything a transaction learns is returned as a :class:`Result`; the caller decides what to
retry. A connection that breaks mid-transaction leaves every recipient without a definite
answer as a temporary failure (so it is retried), and keeps the answers already given.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import Callable

from listserv.delivery.smtp_terms import LOST, Result, SmtpError

# A timer may run this much before its time (the event loop's clock resolution, rounded up).
WATCH_SLACK = 0.01


class ReplyReader(asyncio.Protocol):
    """The client's end of the connection: parses SMTP replies (``250-…`` continuation
    lines, then ``250 …``) as they arrive and wakes a reader only once every reply it waits
    for is in. A server that answers a pipelined group in several writes (Postfix's
    smtp-sink answers a copy's end of data apart from the next MAIL, RCPT and DATA) costs
    one wake-up per round trip, not one per write: for personalized mail the event loop's
    work per copy is most of what the copy costs besides its signature."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.tail = b""
        self.text: list[bytes] = []  # the lines so far of a multiline reply
        self.ready: deque[tuple[int, str]] = deque()
        # Why no more replies will come (the connection closed, or the server spoke
        # something else), raised once the replies before it are read.
        self.error: SmtpError | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.wanted = 0
        # Replies read so far on this connection: none read in a transaction on a kept-alive
        # connection means the server had closed it, not that it refused anything.
        self.count = 0
        # The read timeout is one timer per connection (``_watch``), not one per read:
        # ``asyncio.timeout`` costs about as much as the rest of a copy's round trip.
        # *waiting_since* is when the pending read began (None: none is pending).
        self.waiting_since: float | None = None
        self.watchdog: asyncio.TimerHandle | None = None
        # While ``pump`` runs: takes the next *wanted* replies, returns how many it wants next.
        self.handler: Callable[[list[tuple[int, str]]], int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.error is not None:
            return
        parts = (self.tail + data).split(b"\r\n")
        self.tail = parts.pop()
        for line in parts:
            if line[3:4] == b"-":
                self.text.append(line[4:])
                continue
            if not line[:3].isdigit():
                self._stop(SmtpError(LOST, f"not an SMTP reply: {line[:80]!r}"))
                return
            text = line[4:]
            if self.text:
                self.text.append(text)
                text, self.text = b"\n".join(self.text), []
            self.ready.append((int(line[:3]), text.decode("utf-8", "replace")))
        if self.handler is not None:
            try:
                self._hand_over()
            except BaseException as error:
                self.handler = None
                self._wake(error)
                return
        if len(self.ready) >= self.wanted:
            self._wake(None)

    def _hand_over(self) -> None:
        """Give the pump's handler its replies while they are in, and note the progress for
        the timeout; when it wants no more, its ``pump`` call is done."""
        ready = self.ready
        while self.handler is not None and len(ready) >= self.wanted:
            replies = [ready.popleft() for _ in range(self.wanted)]
            self.count += len(replies)
            self.wanted = self.handler(replies)
            if not self.wanted:
                self.handler = None
            elif self.waiting_since is not None:
                self.waiting_since = asyncio.get_running_loop().time()

    def eof_received(self) -> None:
        self._stop(SmtpError(LOST, "connection closed by the server"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop(SmtpError(LOST, "connection closed by the server"))
        self._unwatch()

    def _stop(self, error: SmtpError) -> None:
        if self.error is None:
            self.error = error
        self._wake(None)

    def _wake(self, error: BaseException | None) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    async def read(
        self, count: int, replies: list[tuple[int, str]] | None = None
    ) -> list[tuple[int, str]]:
        """The next *count* replies as (code, text), appended to *replies* as they are read
        (so the caller keeps them when the connection breaks half-way)."""
        replies = [] if replies is None else replies
        while True:
            ready = self.ready
            while count and ready:
                replies.append(ready.popleft())
                self.count += 1
                count -= 1
            if not count:
                return replies
            if self.error is not None:
                raise self.error
            await self._wait(count)

    async def pump(self, handler: Callable[[list[tuple[int, str]]], int], wanted: int) -> None:
        """Hand *handler* the next *wanted* replies as soon as they are in, then as many as
        it returns, until it returns 0: from the event loop's callback, so a handler that
        writes the next commands itself keeps a pipelined exchange going without waking
        the task for every round trip. The replies of a step that the connection broke
        in the middle of stay for ``take_ready``."""
        self.handler, self.wanted = handler, wanted
        try:
            while True:
                self._hand_over()
                if self.handler is None:
                    return
                if self.error is not None:
                    raise self.error
                await self._wait(self.wanted)
        finally:
            self.handler = None

    def take_ready(self) -> list[tuple[int, str]]:
        """The replies in that nobody has read."""
        replies = list(self.ready)
        self.ready.clear()
        self.count += len(replies)
        return replies

    async def _wait(self, count: int) -> None:
        loop = asyncio.get_running_loop()
        self.wanted = count
        self.waiter = loop.create_future()
        self.waiting_since = loop.time()
        if self.watchdog is None:
            self.watchdog = loop.call_at(self.waiting_since + self.timeout, self._watch)
        try:
            await self.waiter
        finally:
            self.waiter = None
            self.waiting_since = None

    def _watch(self) -> None:
        """Fail the pending read with TimeoutError once it has waited ``timeout`` seconds;
        otherwise look again when it would time out, or stop watching when no read is
        pending (the next one starts the timer again)."""
        started, self.watchdog = self.waiting_since, None
        if started is None:
            return
        loop = asyncio.get_running_loop()
        deadline = started + self.timeout
        if deadline - loop.time() > WATCH_SLACK:
            self.watchdog = loop.call_at(deadline, self._watch)
        else:
            self._wake(TimeoutError())

    def _unwatch(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None


class SmtpConnection:
    def __init__(self, transport: asyncio.Transport, replies: ReplyReader) -> None:
        self.transport = transport
        self.replies = replies
        self.extensions: set[str] = set()

    @classmethod
    async def connect(cls, host: str, port: int, timeout: float, helo_name: str) -> SmtpConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, replies = await loop.create_connection(
                    lambda: ReplyReader(timeout), host, port
                )
        except (OSError, TimeoutError) as error:
            raise SmtpError(LOST, f"cannot connect to {host}:{port}: {error}") from None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = cls(transport, replies)
        try:
            ((code, text),) = await connection.replies.read(1)
            if code != 220:
                raise SmtpError(code, f"greeting: {text}")
            await connection._ehlo(helo_name)
        except BaseException:
            connection.abort()
            raise
        return connection

    async def _ehlo(self, helo_name: str) -> None:
        code, text = await self.command(f"EHLO {helo_name}\r\n".encode())
        if code == 250:
            self.extensions = {line.split(" ", 1)[0].upper() for line in text.split("\n")[1:]}
            return
        code, text = await self.command(f"HELO {helo_name}\r\n".encode())
        if code != 250:
            raise SmtpError(code, f"HELO: {text}")

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.extensions

    async def command(self, line: bytes) -> tuple[int, str]:
        self.transport.write(line)
        (reply,) = await self.replies.read(1)
        return reply

    async def _envelope(self, lines: list[bytes], replies: list[tuple[int, str]]) -> None:
        """Send MAIL and the RCPTs, with DATA appended when pipelining, reading the replies
        into *replies*: in one write and one pass when pipelining, else one at a time."""
        if self.pipelining:
            self.transport.write(b"".join(lines) + b"DATA\r\n")
            await self.replies.read(len(lines) + 1, replies)
            return
        replies.append(await self.command(lines[0]))
        if replies[0][0] < 300:
            for line in lines[1:]:
                replies.append(await self.command(line))

    @staticmethod
    def _answers(
        recipients: list[str], replies: list[tuple[int, str]], result: Result
    ) -> list[str]:
        """Record the refusals among *replies* (MAIL's, then one per RCPT in order) and
        return the recipients accepted so far."""
        if not replies:
            return []
        code, text = replies[0]
        if code >= 300:
            result.fail(recipients, code, f"MAIL FROM: {text}")
            return []
        accepted = []
        for rcpt, (code, text) in zip(recipients, replies[1:], strict=False):
            if code < 300:
                accepted.append(rcpt)
            else:
                result.fail([rcpt], code, text)
        return accepted

    def _mail_command(self, mail_from: str, recipients: list[str], payload: bytes) -> bytes:
        params = ""
        if "8BITMIME" in self.extensions and not payload.isascii():
            params += " BODY=8BITMIME"
        if "SMTPUTF8" in self.extensions and not (
            mail_from.isascii() and all(r.isascii() for r in recipients)
        ):
            params += " SMTPUTF8"
        return f"MAIL FROM:<{mail_from}>{params}\r\n".encode()

    async def send(
        self, mail_from: str, recipients: list[str], payload: bytes, result: Result
    ) -> None:
        """One transaction; *payload* comes from :func:`data_payload`. Answers go into
        *result* as they arrive, so a broken connection keeps the ones already given."""
        lines = [self._mail_command(mail_from, recipients, payload)]
        lines.extend(f"RCPT TO:<{r}>\r\n".encode() for r in recipients)
        replies: list[tuple[int, str]] = []
        try:
            await self._envelope(lines, replies)
        except BaseException:
            self._answers(recipients, replies, result)
            raise
        accepted = self._answers(recipients, replies, result)
        data_sent = len(replies) > len(lines)
        data_open = data_sent and replies[-1][0] == 354
        if not accepted:
            await self._reset(data_open)
            return
        code, text = replies[-1] if data_sent else await self.command(b"DATA\r\n")
        if code != 354:
            result.fail(accepted, code, f"DATA: {text}")
            await self._reset(False)
            return
        self.transport.write(payload)
        await self._end_of_data(accepted, result)

    async def _end_of_data(self, accepted: list[str], result: Result) -> None:
        """Read the reply to a message's content, which was written already."""
        (reply,) = await self.replies.read(1)
        self._content_answer(accepted, reply, result)

    @staticmethod
    def _content_answer(accepted: list[str], reply: tuple[int, str], result: Result) -> None:
        code, text = reply
        if code < 300:
            result.accepted.extend(accepted)
            result.reply = f"{code} {text}"
        else:
            result.fail(accepted, code, f"end of data: {text}")

    async def send_each(self, copies: list[tuple[str, str, bytes]], result: Result) -> None:
        """One transaction per (envelope sender, recipient, payload), back to back. With
        PIPELINING a copy's content goes out in the same write as the next copy's MAIL, RCPT
        and DATA: the content may only follow the server's 354 (RFC 2920 section 3.1), so
        this is one round trip per copy, the fewest there can be. The copies are sent from
        the reply callback (``CopyPump``) as long as every answer is the usual one."""
        if not self.pipelining:
            for mail_from, rcpt, payload in copies:
                await self.send(mail_from, [rcpt], payload, result)
            return
        pump = CopyPump(self, copies, result)
        while not pump.done:
            try:
                await self.replies.pump(pump.answer, pump.write())
            except BaseException:
                pump.answer(self.replies.take_ready())  # what the server said before it broke
                raise
            if pump.reset is not None:
                await self._reset(pump.reset)

    async def _reset(self, in_data: bool) -> None:
        """Abandon the transaction; a pipelined DATA the server opened anyway is ended
        empty first (RFC 2920 section 3.1)."""
        if in_data:
            await self.command(b".\r\n")
        await self.command(b"RSET\r\n")

    async def quit(self) -> None:
        with contextlib.suppress(SmtpError, OSError, TimeoutError):
            await self.command(b"QUIT\r\n")
        self.abort()

    def abort(self) -> None:
        self.replies._unwatch()
        self.transport.close()


class CopyPump:
    """Personalized copies sent back to back on one connection, driven by the replies (see
    ``SmtpConnection.send_each``): each step writes the previous copy's content with the
    next copy's MAIL, RCPT and DATA, and records the four answers. A refusal or a DATA that
    is not answered 354 stops it, for the transaction to be reset (*reset*: whether the
    server opened DATA anyway) before it goes on with the next copy."""

    def __init__(
        self, connection: SmtpConnection, copies: list[tuple[str, str, bytes]], result: Result
    ) -> None:
        self.connection = connection
        self.copies = copies
        self.result = result
        self.next = 0  # the copy whose commands the next step writes
        self.content, self.in_flight = b"", ""  # the accepted copy whose content is due
        self.reset: bool | None = None

    @property
    def done(self) -> bool:
        return self.next == len(self.copies) and not self.in_flight

    def write(self) -> int:
        """Write the next step; returns how many replies it asks for."""
        self.reset = None
        if self.next == len(self.copies):
            self.connection.transport.write(self.content)
            return 1
        mail_from, rcpt, payload = self.copies[self.next]
        # One join: a chain of ``+`` would copy the content once per piece.
        self.connection.transport.write(
            b"".join(
                (
                    self.content,
                    self.connection._mail_command(mail_from, [rcpt], payload),
                    b"RCPT TO:<",
                    rcpt.encode(),
                    b">\r\nDATA\r\n",
                )
            )
        )
        return 4 if self.in_flight else 3

    def answer(self, replies: list[tuple[int, str]]) -> int:
        """Record the replies to the step written last (all of them, or those the server
        gave before the connection broke); write the next step when all went as usual and
        return how many replies it asks for, else 0."""
        connection, result = self.connection, self.result
        if self.in_flight and replies:
            connection._content_answer([self.in_flight], replies[0], result)
            replies = replies[1:]
        self.content, self.in_flight = b"", ""
        if self.next == len(self.copies):
            return 0
        _, rcpt, payload = self.copies[self.next]
        accepted = connection._answers([rcpt], replies, result)
        if len(replies) < 3:  # the connection broke: the copy stays undecided
            return 0
        self.next += 1
        code, text = replies[2]
        if accepted and code == 354:
            self.content, self.in_flight = payload, rcpt
            return self.write()
        if accepted:
            result.fail(accepted, code, f"DATA: {text}")
        self.reset = code == 354
        return 0
