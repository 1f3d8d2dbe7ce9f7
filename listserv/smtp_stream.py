"""A lean SMTP client for many single-recipient transactions on one connection.

Personalized mail is one transaction per recipient, so round trips, not bytes, set the pace.
With PIPELINING (RFC 2920) the client sends a message's content together with the next
transaction's MAIL, RCPT and DATA and then reads all four replies: one round trip per message
instead of four. Without PIPELINING it falls back to one command at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# What the server said of each recipient: (code, text); 250 means accepted.
Replies = dict[str, tuple[int, str]]
# recipient → (envelope sender, message), made only when the recipient's turn comes.
EnvelopeFor = Callable[[str], tuple[str, bytes]]


class ConnectionLost(Exception):
    pass


def dot_stuffed(raw: bytes) -> bytes:
    """The DATA payload for *raw*: leading dots doubled, ending in CRLF, then the final dot."""
    data = raw.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class StreamingClient:
    """One connection to the smarthost, kept across batches."""

    def __init__(self, host: str, port: int, timeout: float, helo: str) -> None:
        self.host, self.port, self.timeout, self.helo = host, port, timeout, helo
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.extensions: set[str] = set()

    async def _reply(self) -> tuple[int, str]:
        """The next reply; callers bound the wait with ``asyncio.timeout``."""
        assert self.reader is not None
        lines = []
        while True:
            line = await self.reader.readline()
            if len(line) < 4 or not line[:3].isdigit():
                raise ConnectionLost(f"bad or no reply: {line[:80]!r}")
            lines.append(line[4:].decode("utf-8", "replace").strip())
            if line[3:4] != b"-":
                break
        code = int(line[:3])
        if code == 421:
            raise ConnectionLost(f"421 {lines[-1]}")
        return code, " ".join(lines)

    async def _command(self, line: bytes) -> tuple[int, str]:
        assert self.writer is not None
        self.writer.write(line + b"\r\n")
        async with asyncio.timeout(self.timeout):
            return await self._reply()

    async def _connect(self) -> None:
        if self.writer is not None and not self.writer.is_closing():
            try:  # a connection idle since the last batch may have been dropped
                if (await self._command(b"NOOP"))[0] == 250:
                    return
            except (ConnectionLost, OSError, TimeoutError):
                pass
            await self.close()
        async with asyncio.timeout(self.timeout):
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        async with asyncio.timeout(self.timeout):
            code, text = await self._reply()
        if code != 220:
            raise ConnectionLost(f"{code} {text}")
        code, text = await self._command(b"EHLO " + self.helo.encode("ascii"))
        if code != 250:
            raise ConnectionLost(f"{code} {text}")
        self.extensions = {word.split()[0].upper() for word in text.split(" ") if word}

    async def send_each(self, recipients: list[str], envelope_for: EnvelopeFor) -> Replies:
        """One transaction per recipient; recipients not reached get a 451."""
        replies: Replies = {}
        try:
            await self._connect()
            await self._stream(recipients, envelope_for, replies)
        except (ConnectionLost, OSError, TimeoutError, asyncio.IncompleteReadError) as error:
            await self.close()
            reason = f"connection failed: {error or type(error).__name__}"
            for rcpt in recipients:
                replies.setdefault(rcpt, (451, reason))
        return replies

    async def _stream(
        self, recipients: list[str], envelope_for: EnvelopeFor, replies: Replies
    ) -> None:
        assert self.writer is not None
        pipelining = "PIPELINING" in self.extensions
        eight_bit = "8BITMIME" in self.extensions
        content, in_flight = b"", ""  # the previous message, sent with the next commands
        for rcpt in recipients:
            mail_from, raw = envelope_for(rcpt)
            body = b" BODY=8BITMIME" if eight_bit and not raw.isascii() else b""
            commands = [
                b"MAIL FROM:<" + mail_from.encode() + b">" + body,
                b"RCPT TO:<" + rcpt.encode() + b">",
                b"DATA",
            ]
            if pipelining:
                self.writer.write(content + b"".join(c + b"\r\n" for c in commands))
                # One deadline for the four replies of a round trip.
                async with asyncio.timeout(self.timeout):
                    if in_flight:
                        replies[in_flight] = await self._reply()
                    answers = [await self._reply() for _ in commands]
            else:
                if in_flight:
                    self.writer.write(content)
                    async with asyncio.timeout(self.timeout):
                        replies[in_flight] = await self._reply()
                answers = []
                for command in commands:
                    answers.append(await self._command(command))
                    if answers[-1][0] >= 400:
                        break
            content, in_flight = b"", ""
            if answers[-1][0] == 354:
                content, in_flight = dot_stuffed(raw), rcpt
            else:
                replies[rcpt] = next(a for a in answers if a[0] >= 400)
                await self._command(b"RSET")
        if in_flight:
            self.writer.write(content)
            async with asyncio.timeout(self.timeout):
                replies[in_flight] = await self._reply()

    async def close(self) -> None:
        writer, self.writer, self.reader = self.writer, None, None
        if writer is None:
            return
        try:
            if not writer.is_closing():
                writer.write(b"QUIT\r\n")
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        except (OSError, TimeoutError):
            pass
