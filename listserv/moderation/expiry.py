"""The moderation schedule: held posts nobody decided expire, and moderators are reminded
of what is pending.

``serve`` runs it every ``[server] moderation_interval`` seconds; ``listserv held expire``
runs it once (``--at`` gives the time to run it as of, to catch up or to try it). Rows are
locked while they are handled, so several ``serve`` processes sharing a database neither
expire a post twice nor remind twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.moderation.decisions import Decider, settle
from listserv.notices import notice, send_notice
from listserv.posting.hold import expires_at, moderators_of
from listserv.store.db import take_write_lock, transaction
from listserv.store.lists import MailList, all_lists
from listserv.store.models import HeldMessage, utcnow

log = logging.getLogger(__name__)
EXPIRY = Decider("expiry", "expiry")


@dataclass
class ScheduleRun:
    expired: int = 0
    reminders: int = 0


def pending_locked(session: Session, list_id: int) -> list[HeldMessage]:
    take_write_lock(session)
    query = (
        select(HeldMessage)
        .where(HeldMessage.list_id == list_id, HeldMessage.status == "pending")
        .order_by(HeldMessage.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(query))


def expire(
    app: App, session: Session, mlist: MailList, now: datetime
) -> tuple[int, list[HeldMessage]]:
    """Expire the list's overdue posts; returns how many, and those still pending."""
    expired, pending = 0, []
    for held in pending_locked(session, mlist.id):
        if expires_at(mlist, held) <= now:
            settle(app, session, mlist, held, "expire", EXPIRY, now=now)
            expired += 1
        else:
            pending.append(held)
    return expired, pending


def remind(
    app: App, session: Session, mlist: MailList, pending: list[HeldMessage], now: datetime
) -> int:
    """Send each moderator one summary when the oldest reminder (or hold) is due."""
    days = mlist.config.hold_reminder_days
    if not days or not pending:
        return 0
    due = now - timedelta(days=days)
    if all((held.reminded_at or held.held_at) > due for held in pending):
        return 0
    expiries = {held.id: expires_at(mlist, held) for held in pending}
    moderators = moderators_of(mlist)
    for moderator in moderators:
        summary = notice(
            app, mlist, "moderation_reminder.txt", moderator, pending=pending, expiries=expiries
        )
        send_notice(app, session, mlist, summary, [moderator])
    for held in pending:
        held.reminded_at = now
    return len(moderators)


def run_schedule(app: App, now: datetime | None = None) -> ScheduleRun:
    now = now or utcnow()
    run = ScheduleRun()
    with app.sessions() as session:
        lists = all_lists(session, app.domain)
    for mlist in lists:
        # One transaction per list: a failure on one list does not hold up the others.
        with transaction(app.sessions) as session:
            expired, pending = expire(app, session, mlist, now)
            run.expired += expired
            run.reminders += remind(app, session, mlist, pending, now)
    return run


async def run_moderation_schedule(app: App, interval: float) -> None:
    """Run the schedule every *interval* seconds until cancelled."""
    while True:
        try:
            run = await asyncio.to_thread(run_schedule, app)
            if run.expired or run.reminders:
                log.info("held posts expired: %d, reminders sent: %d", run.expired, run.reminders)
        except Exception:
            log.exception("moderation schedule failed")
        await asyncio.sleep(interval)
