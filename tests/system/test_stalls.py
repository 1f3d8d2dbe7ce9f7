"""A process stalled past three heartbeats (SIGSTOP) is taken for dead; once it runs again it
joins again and sends nothing twice. Real ``serve`` subprocesses, the real sink, both
databases."""

from __future__ import annotations

import signal
import smtplib
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from support import (
    DOMAIN,
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
from listserv.store.models import Instance

MEMBERS = sorted(f"member{i}@m.example" for i in range(5))
HEARTBEAT = 0.3


def post(port: int, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        message = make_message(MEMBERS[0], subject=subject)
        client.sendmail(MEMBERS[0], f"test@{DOMAIN}", message.as_bytes())


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
        stalled.signal(signal.SIGSTOP)
        eventually(lambda: heartbeat_of(stalled.process.pid) is None, "the peer to take over")
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
