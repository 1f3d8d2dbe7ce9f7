"""Routing at the pace mail arrives: many messages under way at once, in order per address.

The router claims up to ``IN_FLIGHT`` messages. The checks of each post (DKIM, SPF, DMARC:
DNS lookups, cached for their TTL by the resolver) start at once, side by side in their own
threads, so a slow nameserver delays only the posts that wait on it. A message is routed
once its checks are done and every earlier message to the same address has been routed, so
a list's posts go out in the order intake accepted them while another list's slow lookups
hold nothing else up. Ready messages are routed up to ``GROUP`` at a time in one transaction;
when that transaction fails, each is routed again on its own, so one bad message never takes
the others down with it and still gets its own outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from listserv.app import App
from listserv.auth.authentication import Authentication, authenticate, checked_ahead
from listserv.intake.router import claim_messages, process, route
from listserv.mail.addresses import parse_recipient
from listserv.mail.codec import parse
from listserv.store.db import describe, transaction
from listserv.store.lists import list_names
from listserv.store.models import InboxMessage

log = logging.getLogger(__name__)
# Messages claimed and not yet routed, at most.
IN_FLIGHT = 400
# Messages routed in one transaction, at most, and the time one may take before it commits
# with what it has: on SQLite it holds the one write lock, which intake's commits wait for.
GROUP = 50
GROUP_SECONDS = 0.02
# Threads running checks (mostly waiting on DNS) side by side.
CHECKERS = 32
# While intake is storing mail, the router pauses this many times as long as it spent on each
# group: the process has one interpreter lock, and answering the MTA comes first (it holds
# the mail until we do); what is accepted meanwhile is routed as soon as the rush is over.
INTAKE_FIRST = 3.0


@dataclass
class Claimed:
    id: int
    # The checks of a post, running; None for messages that need none.
    checks: asyncio.Future[Authentication | None] | None

    @property
    def ready(self) -> bool:
        return self.checks is None or self.checks.done()


@dataclass
class Row:
    id: int
    rcpt_to: str
    is_post: bool
    raw: bytes
    mail_from: str
    peer_ip: str | None
    helo: str | None


class Routing:
    def __init__(
        self, app: App, instance_id: str, intake_busy: Callable[[], bool] = lambda: False
    ) -> None:
        self.app = app
        self.instance_id = instance_id
        self.intake_busy = intake_busy
        # Claimed messages by recipient address, oldest first.
        self.queues: dict[str, deque[Claimed]] = {}
        self.checkers = ThreadPoolExecutor(CHECKERS, thread_name_prefix="checks")
        self.checked = asyncio.Event()

    @property
    def in_flight(self) -> list[int]:
        return [claimed.id for queue in self.queues.values() for claimed in queue]

    async def run(self, wakeup: asyncio.Event, poll: float) -> None:
        """Route the inbox until cancelled: on each wake-up and every *poll* seconds."""
        try:
            await self._run(wakeup, poll)
        finally:
            self.checkers.shutdown(wait=False, cancel_futures=True)

    async def _run(self, wakeup: asyncio.Event, poll: float) -> None:
        more, claimed_at = True, float("-inf")
        while True:
            try:
                if more or wakeup.is_set() or time.monotonic() - claimed_at >= poll:
                    wakeup.clear()
                    more, claimed_at = await self._claim(), time.monotonic()
                ready = self._ready()
                if ready:
                    started = time.monotonic()
                    routed = await asyncio.to_thread(route_group, self.app, ready)
                    self._done(routed)
                    if self.intake_busy():
                        await asyncio.sleep((time.monotonic() - started) * INTAKE_FIRST)
                    more = True  # there is room again
                    continue
            except SQLAlchemyError as error:
                # The database went away: keep the router alive and try again later, from
                # the oldest message; what we claimed is released by the heartbeat if this
                # process dies.
                log.warning("router: %s", describe(error))
                self.queues.clear()
                more = False
            if not more:
                self.checked.clear()
                await nap_until(wakeup, self.checked, poll)

    async def _claim(self) -> bool:
        """Claim what there is room for; True when there may be more waiting."""
        in_flight = self.in_flight
        room = IN_FLIGHT - len(in_flight)
        if room <= 0:
            return False
        rows = await asyncio.to_thread(
            claim_rows_to_route, self.app, self.instance_id, room, in_flight
        )
        loop = asyncio.get_running_loop()
        for row in rows:
            checks = None
            if row.is_post:
                checks = loop.run_in_executor(self.checkers, check, self.app, row)
                checks.add_done_callback(lambda _: self.checked.set())
            self.queues.setdefault(row.rcpt_to, deque()).append(Claimed(row.id, checks))
        return len(rows) == room

    def _ready(self) -> dict[int, Authentication | None]:
        """Up to ``GROUP`` messages that may be routed now, with their checks."""
        ready: dict[int, Authentication | None] = {}
        for queue in self.queues.values():
            for claimed in queue:
                if not claimed.ready or len(ready) >= GROUP:
                    break
                ready[claimed.id] = claimed.checks.result() if claimed.checks else None
        return dict(sorted(ready.items()))

    def _done(self, routed: Iterable[int]) -> None:
        done = set(routed)
        for address, queue in list(self.queues.items()):
            while queue and queue[0].id in done:
                queue.popleft()
            if not queue:
                del self.queues[address]


def claim_rows_to_route(app: App, instance_id: str, limit: int, skip: list[int]) -> list[Row]:
    ids = claim_messages(app, instance_id, limit, skip)
    if not ids:
        return []
    with app.sessions() as session:
        names = list_names(session)
        found = session.execute(
            select(
                InboxMessage.id,
                InboxMessage.rcpt_to,
                InboxMessage.raw,
                InboxMessage.mail_from,
                InboxMessage.peer_ip,
                InboxMessage.helo,
            )
            .where(InboxMessage.id.in_(ids))
            .order_by(InboxMessage.id)
        )
        rows = []
        for id_, rcpt_to, raw, mail_from, peer_ip, helo in found:
            target = parse_recipient(rcpt_to, app.domain, names)
            is_post = target is not None and target.role == "post"
            rows.append(Row(id_, rcpt_to.lower(), is_post, raw, mail_from, peer_ip, helo))
    return rows


def check(app: App, row: Row) -> Authentication | None:
    """The checks of a post; None when they cannot be made here (the pipeline tries again,
    and records what goes wrong)."""
    try:
        message = parse(row.raw)
        return authenticate(app.resolver, row.raw, message, row.mail_from, row.peer_ip, row.helo)
    except Exception:
        log.debug("checks of message %s left to the pipeline", row.id, exc_info=True)
        return None


def route_group(app: App, checked: dict[int, Authentication | None]) -> list[int]:
    """Route the messages together (the first of them, when time runs out), or each on its
    own when together fails; returns the ids routed."""
    token = checked_ahead.set({i: a for i, a in checked.items() if a is not None})
    try:
        if len(checked) > 1:
            try:
                outcomes = route_together(app, list(checked))
                for message_id, outcome in outcomes.items():
                    log.info("message %s: %s", message_id, outcome)
                return list(outcomes)
            except Exception:
                log.info("routing %d messages together failed; one by one", len(checked))
        for message_id in checked:
            process(app, message_id)
        return list(checked)
    finally:
        checked_ahead.reset(token)


def route_together(app: App, ids: list[int]) -> dict[int, str]:
    """Route *ids* in order in one transaction until ``GROUP_SECONDS`` have passed."""
    outcomes: dict[int, str] = {}
    deadline = time.monotonic() + GROUP_SECONDS
    with transaction(app.sessions) as session:
        found = session.scalars(select(InboxMessage).where(InboxMessage.id.in_(ids))).all()
        stored = {message.id: message for message in found}
        for message_id in ids:
            outcomes[message_id] = route(app, session, stored.get(message_id))
            if time.monotonic() > deadline:
                break
    return outcomes


async def nap_until(wakeup: asyncio.Event, checked: asyncio.Event, seconds: float) -> None:
    """Wait for new mail, finished checks, or *seconds*."""
    waiters = [asyncio.ensure_future(event.wait()) for event in (wakeup, checked)]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
