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
one round trip per copy instead of four. Without PIPELINING it sends the same commands one at
a time. The smarthost is the local MTA, reached in the clear; STARTTLS would go into
``connect``.

Everything a transaction learns is returned as a :class:`Result`; the caller decides what to
retry. A connection that breaks mid-transaction leaves every recipient without a definite
answer as a temporary failure (so it is retried), and keeps the answers already given.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from dataclasses import dataclass, field

LOST = 451


class SmtpError(Exception):
    """The connection broke or the server said something a client cannot go on from."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


@dataclass
class Result:
    """What the receiving server said of each recipient of one transaction."""

    accepted: list[str] = field(default_factory=list)
    temporary: dict[str, tuple[int, str]] = field(default_factory=dict)
    permanent: dict[str, tuple[int, str]] = field(default_factory=dict)
    # The smarthost's last reply to a message it took ("250 2.0.0 Ok: queued as 4Xyz"), for
    # the log: it names the message in the smarthost's own log.
    reply: str = ""

    def fail(self, recipients: list[str], code: int, reason: str) -> Result:
        target = self.temporary if code < 500 else self.permanent
        for rcpt in recipients:
            target[rcpt] = (code, reason)
        return self

    def undecided(self, recipients: list[str]) -> list[str]:
        """Recipients with no definite answer: not refused, and the message not taken."""
        return [r for r in recipients if r not in self.permanent and r not in self.temporary]


def data_payload(raw: bytes) -> bytes:
    """The DATA payload of *raw*: CRLF line ends, dot-stuffed, ending with ``.``. (Made
    once per personalized copy, so the usual all-CRLF message takes no regular expression.)"""
    text = raw
    if raw.count(b"\n") != raw.count(b"\r\n"):
        text = re.sub(rb"(?<!\r)\n", b"\r\n", raw)
    text = text.replace(b"\r\n.", b"\r\n..")
    if text.startswith(b"."):
        text = b"." + text
    if not text.endswith(b"\r\n"):
        text += b"\r\n"
    return text + b".\r\n"


class ReplyReader:
    """Reads SMTP replies (``250-…`` continuation lines, then ``250 …``) in bulk."""

    def __init__(self, reader: asyncio.StreamReader, timeout: float) -> None:
        self.reader = reader
        self.timeout = timeout
        self.lines: list[bytes] = []
        self.position = 0
        self.tail = b""
        # Replies read so far on this connection: none read in a transaction on a kept-alive
        # connection means the server had closed it, not that it refused anything.
        self.count = 0

    async def _fill(self) -> None:
        async with asyncio.timeout(self.timeout):
            chunk = await self.reader.read(1 << 16)
        if not chunk:
            raise SmtpError(LOST, "connection closed by the server")
        parts = (self.tail + chunk).split(b"\r\n")
        self.tail = parts.pop()
        del self.lines[: self.position]
        self.position = 0
        self.lines.extend(parts)

    async def read(
        self, count: int, replies: list[tuple[int, str]] | None = None
    ) -> list[tuple[int, str]]:
        """The next *count* replies as (code, text), appended to *replies* as they are read
        (so the caller keeps them when the connection breaks half-way)."""
        replies = [] if replies is None else replies
        wanted = len(replies) + count
        text: list[bytes] = []
        while len(replies) < wanted:
            if self.position == len(self.lines):
                await self._fill()
                continue
            line = self.lines[self.position]
            self.position += 1
            text.append(line[4:])
            if line[3:4] != b"-":
                if not line[:3].isdigit():
                    raise SmtpError(LOST, f"not an SMTP reply: {line[:80]!r}")
                replies.append((int(line[:3]), b"\n".join(text).decode("utf-8", "replace")))
                text = []
                self.count += 1
        return replies


class SmtpConnection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        timeout: float,
    ) -> None:
        self.writer = writer
        self.replies = ReplyReader(reader, timeout)
        self.extensions: set[str] = set()

    @classmethod
    async def connect(cls, host: str, port: int, timeout: float, helo_name: str) -> SmtpConnection:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as error:
            raise SmtpError(LOST, f"cannot connect to {host}:{port}: {error}") from None
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = cls(reader, writer, timeout)
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
        self.writer.write(line)
        (reply,) = await self.replies.read(1)
        return reply

    async def _envelope(self, lines: list[bytes], replies: list[tuple[int, str]]) -> None:
        """Send MAIL and the RCPTs, with DATA appended when pipelining, reading the replies
        into *replies*: in one write and one pass when pipelining, else one at a time."""
        if self.pipelining:
            self.writer.write(b"".join(lines) + b"DATA\r\n")
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
        self.writer.write(payload)
        await self._end_of_data(accepted, result)

    async def _end_of_data(self, accepted: list[str], result: Result) -> None:
        """Read the reply to a message's content, which was written already."""
        ((code, text),) = await self.replies.read(1)
        if code < 300:
            result.accepted.extend(accepted)
            result.reply = f"{code} {text}"
        else:
            result.fail(accepted, code, f"end of data: {text}")

    async def send_each(self, copies: list[tuple[str, str, bytes]], result: Result) -> None:
        """One transaction per (envelope sender, recipient, payload), back to back. With
        PIPELINING a copy's content goes out in the same write as the next copy's MAIL, RCPT
        and DATA: the content may only follow the server's 354 (RFC 2920 section 3.1), so
        this is one round trip per copy, the fewest there can be."""
        if not self.pipelining:
            for mail_from, rcpt, payload in copies:
                await self.send(mail_from, [rcpt], payload, result)
            return
        content, in_flight = b"", ""  # the previous copy, sent with the next commands
        for mail_from, rcpt, payload in copies:
            self.writer.write(
                content
                + self._mail_command(mail_from, [rcpt], payload)
                + f"RCPT TO:<{rcpt}>\r\nDATA\r\n".encode()
            )
            if in_flight:
                await self._end_of_data([in_flight], result)
            content, in_flight = b"", ""
            replies: list[tuple[int, str]] = []
            try:
                await self.replies.read(3, replies)
            except BaseException:
                self._answers([rcpt], replies, result)
                raise
            accepted = self._answers([rcpt], replies, result)
            code, text = replies[2]
            if accepted and code == 354:
                content, in_flight = payload, rcpt
                continue
            if accepted:
                result.fail(accepted, code, f"DATA: {text}")
            await self._reset(code == 354)
        if in_flight:
            self.writer.write(content)
            await self._end_of_data([in_flight], result)

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
        self.writer.close()
