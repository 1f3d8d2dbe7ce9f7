"""Digest issues: every distributed post is kept for the list's next issue; when the issue
is due (``schedule``) it is built in each format and queued to the members of each digest
mode.

Building an issue, queueing its mail to the members of each digest mode, numbering it and
consuming its posts are one transaction: a crash leaves either no issue or one complete issue,
never two and never a lost post. On PostgreSQL the list's state row is locked (``SKIP
LOCKED``), so of several ``serve`` processes only one builds a given issue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.delivery.outbound import Wakeup, send
from listserv.digests.assemble import BUILDERS, assemble
from listserv.digests.schedule import Pending, advance, is_due
from listserv.store.claims import nap
from listserv.store.db import transaction
from listserv.store.lists import MailList, all_lists, get_list
from listserv.store.members import recipients_query
from listserv.store.models import DigestEntry, DigestState, utcnow

log = logging.getLogger(__name__)


# Wakes this process's digest scheduler when a post was added, so a full issue goes at once.
wake_digests = Wakeup()
# Seconds between two checks at least, however often posts wake the scheduler.
WAKE_GAP = 1.0


ADD_ENTRY = insert(DigestEntry)


def add_to_digest(session: Session, list_id: int, raw: bytes, message_id: int | None) -> None:
    """Keep a distributed post (as members received it) for the list's next issue."""
    # On the connection: the routing transaction's statements skip the ORM's bookkeeping.
    session.connection().execute(
        ADD_ENTRY, {"list_id": list_id, "raw": raw, "size": len(raw), "message_id": message_id}
    )
    session.info["wake_digests"] = True


def wake_digests_after_commit(session: Session) -> None:
    """Session ``after_commit`` hook: wake the scheduler when the commit added a post."""
    if session.info.pop("wake_digests", False):
        wake_digests()


# ---- state -----------------------------------------------------------------------------------


def ensure_states(session: Session, list_ids: list[int], now: datetime) -> None:
    """Give each list a digest state; a new one counts its period from *now*."""
    have = set(
        session.scalars(select(DigestState.list_id).where(DigestState.list_id.in_(list_ids)))
    )
    missing = [i for i in list_ids if i not in have]
    if not missing:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    rows = [
        {"list_id": i, "volume": 1, "issue": 0, "last_sent_at": now, "new_volume": False}
        for i in missing
    ]
    # Another process may create the same rows at the same moment.
    session.execute(dialect.insert(DigestState).values(rows).on_conflict_do_nothing())


def lock_state(session: Session, list_id: int) -> DigestState | None:
    """The list's state, locked for building an issue; None while another process holds it."""
    if session.get_bind().dialect.name == "postgresql":
        query = select(DigestState).where(DigestState.list_id == list_id)
        return session.scalar(query.with_for_update(skip_locked=True))
    # SQLite has one writer: writing first takes the lock before anything is read.
    session.execute(
        update(DigestState).where(DigestState.list_id == list_id).values(volume=DigestState.volume)
    )
    return session.get(DigestState, list_id, populate_existing=True)


def pending_by_list(session: Session) -> dict[int, Pending]:
    last_sent = {
        row.list_id: row.last_sent_at
        for row in session.execute(select(DigestState.list_id, DigestState.last_sent_at))
    }
    totals = select(
        DigestEntry.list_id,
        func.count(),
        func.sum(DigestEntry.size),
        func.min(DigestEntry.added_at),
    ).group_by(DigestEntry.list_id)
    return {
        list_id: Pending(count, int(size or 0), last_sent[list_id], oldest)
        for list_id, count, size, oldest in session.execute(totals)
        if list_id in last_sent
    }


# ---- sending ---------------------------------------------------------------------------------


def send_issue(app: App, mlist: MailList, *, now: datetime, force: bool) -> str | None:
    """Build and queue the list's next issue if it is due (or *force*d and not empty);
    returns its name, or None when nothing was sent."""
    with transaction(app.sessions) as session:
        state = lock_state(session, mlist.id)
        if state is None:
            return None
        entries = list(
            session.scalars(
                select(DigestEntry).where(DigestEntry.list_id == mlist.id).order_by(DigestEntry.id)
            )
        )
        if not entries:
            return None
        pending = Pending(
            len(entries), sum(e.size for e in entries), state.last_sent_at, entries[0].added_at
        )
        if not (force or is_due(pending, mlist.config.digest, now)):
            return None
        of_list = {"list_id": mlist.id}
        if not session.scalar(select(recipients_query(tuple(BUILDERS)).exists()), of_list):
            # Nobody takes the digest: its posts are let go unread, and no number is used up.
            session.execute(delete(DigestEntry).where(DigestEntry.id.in_([e.id for e in entries])))
            return None
        numbering = (state.volume, state.issue, state.last_sent_at, state.new_volume)
        advance(state, now, ZoneInfo(mlist.config.digest.timezone))
        built, set_aside = assemble(app, mlist, state.volume, state.issue, now, entries)
        if not built:  # every post set aside: no issue, and its number is not used up
            state.volume, state.issue, state.last_sent_at, state.new_volume = numbering
        for mode, message in built.items():
            # A query: the database makes the batches, no member goes through memory.
            to = recipients_query((mode,))
            if session.scalar(select(to.exists()), of_list):
                send(app, session, mlist, "digest", message, to)
        session.execute(delete(DigestEntry).where(DigestEntry.id.in_([e.id for e in entries])))
        if not built:
            return None
        posts = len(entries) - len(set_aside)
        return f"Vol {state.volume}, Issue {state.issue} ({posts} posts)"


def send_due(
    app: App, names: list[str] | None = None, *, force: bool = False, now: datetime | None = None
) -> dict[str, str | None]:
    """Send every issue that is due (with *force*, every non-empty one) of the named lists or
    all lists; returns what was sent per list name."""
    now = now or utcnow()
    with transaction(app.sessions) as session:
        if names:
            lists = [get_list(session, name, app.domain) for name in names]
        else:
            lists = all_lists(session, app.domain)
        ensure_states(session, [mlist.id for mlist in lists], now)
    with app.sessions() as session:
        pending = pending_by_list(session)
    sent: dict[str, str | None] = {}
    for mlist in lists:
        waiting = pending.get(mlist.id)
        sent[mlist.name] = None
        if waiting and (force or is_due(waiting, mlist.config.digest, now)):
            # One list's broken issue must not hold back the others; it is tried again later.
            try:
                sent[mlist.name] = send_issue(app, mlist, now=now, force=force)
            except Exception as error:
                log.exception("digest of %s could not be sent", mlist.name)
                sent[mlist.name] = f"failed: {type(error).__name__}: {error}"
    return sent


def request_new_volume(app: App, name: str) -> None:
    """Make the list's next issue the first of a new volume."""
    with transaction(app.sessions) as session:
        mlist = get_list(session, name, app.domain)
        ensure_states(session, [mlist.id], utcnow())
        session.execute(
            update(DigestState).where(DigestState.list_id == mlist.id).values(new_volume=True)
        )


async def run_digests(app: App, wakeup: asyncio.Event) -> None:
    """Send due issues until cancelled: when a post arrives and every
    ``[server] digest_check_interval`` seconds."""
    while True:
        wakeup.clear()
        started = time.monotonic()
        try:
            for name, sent in (await asyncio.to_thread(send_due, app)).items():
                if sent and not sent.startswith("failed"):
                    log.info("digest of %s: %s", name, sent)
        except Exception:
            log.exception("digest scheduler failed")
        # Every routing transaction that adds a post wakes this: under a stream of posts the
        # checks took a sixth of a worker's time, so they are a second apart at least.
        await asyncio.sleep(max(0.0, WAKE_GAP - (time.monotonic() - started)))
        # A post that fills an issue wakes this at once; should that wake be missed, a full
        # issue waits at most a heartbeat, not a whole check interval.
        server = app.config.server
        await nap(wakeup, min(server.digest_check_interval, server.heartbeat))
