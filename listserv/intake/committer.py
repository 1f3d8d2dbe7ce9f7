"""Group commit for intake: the messages of concurrent SMTP sessions go into the inbox in one
transaction (one fsync for many), and each session awaits the commit that holds its message
before it answers 250.

The committer is self-clocking: while one group is being written, the messages that arrive
wait and form the next group, so a lone message is written at once and a burst of them costs
a handful of commits. A group that fails fails every session in it (they answer 451 and the
client tries again); nothing of a failed group was stored.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker

from listserv.store.db import transaction
from listserv.store.models import InboxMessage, ReceivedBody, utcnow

RECEIVED_BODIES = ReceivedBody.__table__
INBOX = InboxMessage.__table__
# Rows written in one transaction at most: a bound on the memory of one statement.
MAX_GROUP_ROWS = 2000


class Flag(Protocol):
    """A shared integer (``multiprocessing.RawValue``) or a plain holder of one."""

    value: int


@dataclass
class Holder:
    value: int = 0


@dataclass
class Received:
    """One SMTP transaction for the inbox: its bytes, stored once, and an inbox row (without
    the bytes) for each of its recipients."""

    raw: bytes
    rows: list[dict[str, Any]]


@dataclass
class Pending:
    received: Received
    done: asyncio.Future[list[int]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommitter:
    def __init__(self, sessions: sessionmaker[Session], waiting_flag: Flag | None = None) -> None:
        self.sessions = sessions
        # Set while messages wait to be written: read by routers, in this process or in worker
        # processes when it is shared memory.
        self.waiting_flag = Holder() if waiting_flag is None else waiting_flag
        self.pending: list[Pending] = []
        # One group is written at a time (measured: two or four at once on PostgreSQL
        # accepted less, not more).
        self.writer: asyncio.Task[None] | None = None
        # Its own thread: in the shared pool a commit queued behind the router's and
        # delivery's work, and sessions waited for their 250 meanwhile.
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="intake-commit")
        # How many transactions and messages went in, for the tests.
        self.commits = 0
        self.stored = 0

    def waiting(self) -> bool:
        """True while messages wait to be written (read by the router's thread: it ends its
        transaction early, as on SQLite the commit waits for the router's write lock)."""
        return bool(self.waiting_flag.value)

    async def store(self, received: Received) -> list[int]:
        """Write *received* to the inbox; returns its rows' ids once committed. Raises the
        database's error when its group could not be committed."""
        entry = Pending(received)
        # Its error is read even when the session is gone, so asyncio does not report it.
        entry.done.add_done_callback(lambda done: done.cancelled() or done.exception())
        self.pending.append(entry)
        self.waiting_flag.value = 1
        if self.writer is None or self.writer.done():
            self.writer = asyncio.create_task(self._write_groups())
        # A session cancelled (client gone) leaves its message to the group: it may already
        # be on its way to disk, and the client, lacking a 250, will send it again.
        return await asyncio.shield(entry.done)

    async def _write_groups(self) -> None:
        try:
            await self._write_pending()
        finally:
            self.waiting_flag.value = 0

    async def _write_pending(self) -> None:
        while self.pending:
            group = self._next_group()
            try:
                ids = await asyncio.get_running_loop().run_in_executor(
                    self.thread, insert_rows, self.sessions, [entry.received for entry in group]
                )
            except Exception as error:
                for entry in group:
                    if not entry.done.done():
                        entry.done.set_exception(error)
                continue
            self.commits += 1
            self.stored += len(group)
            for entry in group:
                count = len(entry.received.rows)
                if not entry.done.done():
                    entry.done.set_result(ids[:count])
                ids = ids[count:]

    def _next_group(self) -> list[Pending]:
        group: list[Pending] = []
        rows = 0
        while self.pending and (
            not group or rows + len(self.pending[0].received.rows) <= MAX_GROUP_ROWS
        ):
            entry = self.pending.pop(0)
            group.append(entry)
            rows += len(entry.received.rows)
        return group


def insert_rows(sessions: sessionmaker[Session], transactions: list[Received]) -> list[int]:
    """One database transaction for all *transactions*: each one's bytes once, then its
    rows; the rows' ids in order."""
    with transaction(sessions) as session:
        # On the connection: the ORM's bulk insert cost a third of intake's CPU.
        connection = session.connection()
        bodies = connection.execute(
            insert(RECEIVED_BODIES).returning(RECEIVED_BODIES.c.id, sort_by_parameter_order=True),
            [{"raw": t.raw, "size": len(t.raw)} for t in transactions],
        )
        rows = [
            {**row, "body_id": body_id}
            for t, body_id in zip(transactions, bodies.scalars(), strict=True)
            for row in t.rows
        ]
        result = connection.execute(
            insert(INBOX).returning(INBOX.c.id, sort_by_parameter_order=True), rows
        )
        return list(result.scalars())


def received(
    mail_from: str,
    rcpt_tos: list[str],
    raw: bytes,
    peer: str | None,
    helo: str | None,
    claimed_by: str | None = None,
) -> Received:
    """A message for the inbox: its bytes, and a row for each recipient."""
    now = utcnow()
    rows = [
        {
            "received_at": now,
            "mail_from": mail_from,
            "rcpt_to": rcpt,
            "status": "new",
            "outcome": "",
            "peer_ip": peer,
            "helo": (helo or "")[:255] or None,
            "claimed_by": claimed_by,
        }
        for rcpt in rcpt_tos
    ]
    return Received(raw, rows)
