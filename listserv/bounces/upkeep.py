"""Bounce upkeep: old scores and unanswered probes are forgotten; a disabled member gets
``bounce_warnings`` reminders, one per ``bounce_warning_interval_days``, then is removed.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.bounces.actions import warn
from listserv.notices import notice, send_notice
from listserv.store.claims import lock_rows
from listserv.store.db import transaction
from listserv.store.lists import MailList, all_lists
from listserv.store.members import remove_member
from listserv.store.models import Member, MemberEvent, utcnow

log = logging.getLogger(__name__)


def upkeep(app: App) -> None:
    """Forget old scores and unanswered probes; remind disabled members, then remove them."""
    now = utcnow()
    with transaction(app.sessions) as session:
        for mlist in all_lists(session, app.domain):
            config = mlist.config
            in_list = Member.list_id == mlist.id
            session.execute(
                update(Member)
                .where(in_list, Member.probe_digest.is_not(None))
                .where(Member.probe_sent_at <= now - timedelta(days=config.bounce_probe_days))
                .values(probe_digest=None, probe_sent_at=None, bounce_score=0.0)
            )
            session.execute(
                update(Member)
                .where(in_list, Member.bounce_score > 0, Member.probe_digest.is_(None))
                .where(Member.disabled_reason.is_(None))
                .where(Member.last_bounce_at <= now - timedelta(days=config.bounce_reset_days))
                .values(bounce_score=0.0)
            )
            due = now - timedelta(days=config.bounce_warning_interval_days)
            query = select(Member).where(
                in_list, Member.disabled_reason == "bounces", Member.last_warning_at <= due
            )
            for member in session.scalars(lock_rows(query, session)).all():
                remind_or_remove(app, session, mlist, member)


def remind_or_remove(app: App, session: Session, mlist: MailList, member: Member) -> None:
    if member.bounce_warnings < mlist.config.bounce_warnings:
        member.bounce_warnings += 1
        member.last_warning_at = utcnow()
        warn(app, session, mlist, member)
        return
    address = member.address
    remove_member(session, mlist.id, address)
    message = notice(
        app,
        mlist,
        "bounce_removed.txt",
        address,
        address=address,
        join_address=mlist.address("join"),
    )
    send_notice(app, session, mlist, message, [address])
    session.add(
        MemberEvent(list_id=mlist.id, address=address, kind="removed", outcome="removed: bounces")
    )


async def run_upkeep(app: App, interval: float) -> None:
    while True:
        try:
            await asyncio.to_thread(upkeep, app)
        except Exception:
            log.exception("bounce upkeep failed")
        await asyncio.sleep(interval)
