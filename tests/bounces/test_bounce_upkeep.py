"""Bounce upkeep walks the members of every list: it runs every
``[server] bounce_upkeep_interval`` seconds in one process at a time, not at every heartbeat
of every process. Both databases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update
from support import RunningServer, cli, list_table

from listserv.config import load_config
from listserv.server import prepare
from listserv.store.models import Member, ScheduledRun, utcnow
from listserv.store.turns import NEVER, take_turn

LONG_AGO = utcnow() - timedelta(days=30)


def test_upkeep_waits_for_its_interval_not_the_heartbeat(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server(
        lists=[list_table("test", bounce_probe_days=1.0)],
        server={"heartbeat": 0.2, "bounce_upkeep_interval": 3600},
    )
    assert cli(server.config_path, "members", "add", "--no-welcome", "test", "a@x.example")
    app = server.app

    def last_run() -> object:
        with app.sessions() as session:
            return session.scalar(
                select(ScheduledRun.ran_at).where(ScheduledRun.name == "bounce_upkeep")
            )

    server.wait_for_state(lambda: (last_run() or NEVER) > NEVER, "the first upkeep at start")
    # A probe that went unanswered for a month: the next upkeep clears it.
    with app.sessions.begin() as session:
        session.execute(
            update(Member).values(probe_digest="0" * 64, probe_sent_at=LONG_AGO, bounce_score=5.0)
        )
    seen = server.commits
    server.wait_for_state(lambda: server.commits >= seen + 15, "fifteen heartbeats")
    with app.sessions() as session:
        member = session.scalar(select(Member))
        assert member is not None and member.probe_digest == "0" * 64


def test_of_two_processes_one_takes_the_turn(config_file: Callable[..., Path]) -> None:
    path = config_file()
    first, second = prepare(load_config(path)), prepare(load_config(path))
    try:
        assert take_turn(first.sessions, "bounce_upkeep", 60)
        assert not take_turn(second.sessions, "bounce_upkeep", 60)
        assert not take_turn(first.sessions, "bounce_upkeep", 60)
        # Once the interval has passed, whoever comes first.
        assert take_turn(second.sessions, "bounce_upkeep", 0)
    finally:
        first.engine.dispose()
        second.engine.dispose()
