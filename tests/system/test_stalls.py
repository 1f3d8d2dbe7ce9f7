"""A process stalled past three heartbeats (SIGSTOP) is taken for dead; once it runs again it
joins again and sends nothing twice. A process whose host clock runs two hours ahead
(libfaketime) is taken for dead by nobody and takes nobody for dead. Real ``serve``
subprocesses, the real sink, both databases."""

from __future__ import annotations

import glob
import os
import signal
import smtplib
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from support import (
    DOMAIN,
    WAIT,
    ServeProcess,
    Sink,
    cli,
    eventually,
    free_port,
    make_message,
    second_config,
)

from listserv.config import load_config
from listserv.server import prepare
from listserv.store.claims import MISSED_BEATS
from listserv.store.models import Instance

MEMBERS = sorted(f"member{i}@m.example" for i in range(5))
HEARTBEAT = 0.3


def post(port: int, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        message = make_message(MEMBERS[0], subject=subject)
        client.sendmail(MEMBERS[0], f"test@{DOMAIN}", message.as_bytes())


def stall_until_taken_over(process: ServeProcess, taken_over: Callable[[], bool]) -> None:
    """Stop *process* until its peer takes it for dead. Stopped in the middle of one of its
    transactions, it would hold the write lock (SQLite) or its rows' locks (PostgreSQL) and
    nobody could take over: not the stall this is about, so it runs a moment and stops again."""
    # A takeover needs three missed beats (about a second); on a loaded machine a stop lands
    # inside a transaction more often, so more, shorter tries.
    for _ in range(10):
        process.signal(signal.SIGSTOP)
        try:
            eventually(taken_over, "the peer to take over", timeout=WAIT / 6)
            return
        except AssertionError:
            process.signal(signal.SIGCONT)
    raise AssertionError("the peer never took the stalled process for dead")


def test_a_process_taken_for_dead_joins_again_and_sends_nothing_twice(
    config_file: Callable[..., Path], sink: Sink, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    path = config_file(
        server={"listen": f"127.0.0.1:{ports[0]}", "heartbeat": HEARTBEAT},
        delivery={"connections": 2},
    )
    other = second_config(path, *ports)
    assert cli(path, "members", "add", "--no-welcome", "test", *MEMBERS).exit_code == 0
    app = prepare(load_config(path))

    def heartbeat_of(pid: int) -> Any:
        with app.sessions() as session:
            return session.scalar(select(Instance.heartbeat_at).where(Instance.pid == pid))

    stalled, peer = ServeProcess(path), ServeProcess(other)
    try:
        stall_until_taken_over(stalled, lambda: heartbeat_of(stalled.process.pid) is None)
        stalled.signal(signal.SIGCONT)
        peer.signal(signal.SIGTERM)
        assert peer.wait() == 0
        # The stalled process sends a post alone; the sink holds its DATA over several beats.
        gate = threading.Event()
        sink.data_gate = gate
        post(ports[0], "After the stall")
        sink.wait_until(lambda s: s.held == 1)
        held_at = heartbeat_of(stalled.process.pid)

        def beats_passed_or_sent_again() -> bool:
            beat = heartbeat_of(stalled.process.pid)
            passed = beat and held_at and (beat - held_at).total_seconds() > 3 * HEARTBEAT
            return bool(sink.received) or bool(passed)

        eventually(beats_passed_or_sent_again, "three heartbeats with the batch in flight")
        gate.set()
        sink.wait_for_recipients(set(MEMBERS))
        post(ports[0], "Last")
        got = sink.wait_for(lambda got: any(m.message["Subject"] == "[test] Last" for m in got))
    finally:
        stalled.signal(signal.SIGCONT)
        stalled.stop()
        peer.stop()
        app.engine.dispose()
    copies = Counter(
        rcpt for m in got if m.message["Subject"] == "[test] After the stall" for rcpt in m.rcpt_tos
    )
    assert copies == Counter(dict.fromkeys(MEMBERS, 1))


# libfaketime, as the ``faketime`` command preloads it (Debian's package ``faketime``).
LIBFAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))), None)
# The clock ahead is the process's own (time(), gettimeofday, clock_gettime(REALTIME));
# asyncio's monotonic clock is left alone, so its timers still run at the right pace.
AHEAD = {
    "LD_PRELOAD": LIBFAKETIME or "",
    "FAKETIME": "+2h",
    "FAKETIME_DONT_FAKE_MONOTONIC": "1",
}
# What a process logs when it takes another for dead, or finds it was taken for dead.
TAKEN_FOR_DEAD = ("silent for", "taken for dead")
# Slow enough that a loaded machine does not make a process miss three beats in a row.
SLOW_HEARTBEAT = 2.0


@pytest.mark.skipif(
    LIBFAKETIME is None and not os.environ.get("CI"), reason="libfaketime not installed"
)
def test_a_process_whose_clock_runs_ahead_takes_nobody_for_dead_and_sends_nothing_twice(
    config_file: Callable[..., Path], sink: Sink
) -> None:
    ports = [free_port(), free_port()]
    path = config_file(
        server={"listen": f"127.0.0.1:{ports[0]}", "heartbeat": SLOW_HEARTBEAT},
        # A batch per member: both processes take batches of every post.
        delivery={"connections": 2, "max_recipients": 1},
    )
    other = second_config(path, *ports)
    assert cli(path, "members", "add", "--no-welcome", "test", *MEMBERS).exit_code == 0
    app = prepare(load_config(path))

    def instances() -> dict[int, tuple[str, int]]:
        """Each process's instance id and beat count, by pid."""
        with app.sessions() as session:
            rows = session.execute(select(Instance.pid, Instance.id, Instance.beats))
            return {pid: (i, beats) for pid, i, beats in rows}

    processes: list[ServeProcess] = []
    try:
        ahead = ServeProcess(path, env=AHEAD)
        processes.append(ahead)
        peer = ServeProcess(other)
        processes.append(peer)
        # The faked clock is the one it logs by: two hours ahead of ours.
        (listening,) = [line for line in ahead.log if "listening on" in line]
        assert datetime.fromisoformat(listening[:19]) - datetime.now() > timedelta(hours=1)
        registered = eventually(lambda: len(instances()) == 2 and instances(), "both registered")
        subjects = [f"Post {i}" for i in range(6)]
        for i, subject in enumerate(subjects):
            post(ports[i % 2], subject)
        sink.wait_for(lambda got: len(copies_of(got, subjects)) >= len(MEMBERS) * len(subjects))

        def beats_since_registered(process: ServeProcess) -> int:
            _, first = registered[process.process.pid]
            _, now = instances().get(process.process.pid, ("", first))
            return now - first

        # Long enough for either to have taken the other for dead, twice over.
        for process in (ahead, peer):
            eventually(
                lambda: beats_since_registered(process) > 2 * MISSED_BEATS,  # noqa: B023
                "six heartbeats of each",
                timeout=60,
            )
        post(ports[0], "Last")
        got = sink.wait_for(lambda got: len(copies_of(got, ["Last"])) >= len(MEMBERS))
        # Neither was removed, nor joined again.
        assert {pid: i for pid, (i, _) in instances().items()} == {
            pid: i for pid, (i, _) in registered.items()
        }
    finally:
        for process in processes:
            process.stop()
        app.engine.dispose()
    for process in processes:
        assert not [line for line in process.log if any(t in line for t in TAKEN_FOR_DEAD)]
    assert Counter(copies_of(got, subjects)) == Counter(
        {(member, f"[test] {s}"): 1 for member in MEMBERS for s in subjects}
    )


def copies_of(got: list[Any], subjects: list[str]) -> list[tuple[str, str]]:
    """(member, subject) for every copy received of the posts of *subjects*."""
    wanted = {f"[test] {s}" for s in subjects}
    return [
        (rcpt, m.message["Subject"])
        for m in got
        if m.message["Subject"] in wanted
        for rcpt in m.rcpt_tos
    ]
