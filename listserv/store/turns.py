"""Periodic jobs that every ``serve`` process schedules but that need to run only once per
interval among all of them (bounce upkeep walks every list's members): a process takes its
turn by moving the job's ``scheduled_runs`` row forward, in one ``UPDATE`` on the job's
interval having passed, so of several processes at once exactly one runs it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from listserv.store.db import database_now, transaction
from listserv.store.models import ScheduledRun

NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def take_turn(sessions: sessionmaker[Session], job: str, interval: float) -> bool:
    """True if this process should run *job* now: nobody has run it for *interval*
    seconds; its run is recorded as of now, so the others wait for the next interval."""
    with transaction(sessions) as session:
        now = database_now(session)
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(
            dialect.insert(ScheduledRun)
            .values(name=job, ran_at=NEVER)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        taken = session.execute(
            update(ScheduledRun)
            .where(ScheduledRun.name == job)
            .where(ScheduledRun.ran_at <= now - timedelta(seconds=interval))
            .values(ran_at=now)
        )
        return bool(taken.rowcount)  # type: ignore[attr-defined]
