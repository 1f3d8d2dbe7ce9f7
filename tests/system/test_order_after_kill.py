"""A post accepted by a process that then dies is sent before the posts to the same list that
came after it, once another process takes over. Real ``serve`` subprocesses (one killed with
-9, which also frees any lock it held, as a crash does) on one database, the real sink, both
databases."""

from __future__ import annotations

import signal
import smtplib
from collections.abc import Callable
from pathlib import Path

from dnsstub import DnsStub
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
from listserv.store.models import InboxMessage

SLOW_POSTER = "poster@slow.example"
MEMBERS = sorted([SLOW_POSTER, *(f"member{i}@m.example" for i in range(3))])


def send(port: int, sender: str, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        message = make_message(sender, f"test@{DOMAIN}", subject)
        client.sendmail(sender, f"test@{DOMAIN}", message.as_bytes())


def test_a_post_caught_in_a_dying_process_keeps_its_place(
    config_file: Callable[..., Path], sink: Sink, dns_stub: DnsStub, tmp_path: Path
) -> None:
    # The checks of the first post wait on a nameserver that never answers: the process
    # handling it is stopped right then.
    dns_stub.failures["_dmarc.slow.example"] = "timeout"
    ports = [free_port(), free_port()]
    path = config_file(
        server={"listen": f"127.0.0.1:{ports[0]}", "heartbeat": 0.3},
        delivery={"connections": 1},
        dns={"timeout": 1.5},
    )
    other = second_config(path, *ports)
    assert cli(path, "members", "add", "--no-welcome", "test", *MEMBERS).exit_code == 0
    app = prepare(load_config(path))

    def claimed_by_first() -> bool:
        with app.sessions() as session:
            query = select(InboxMessage.claimed_by).where(InboxMessage.id == 1)
            return session.scalar(query) is not None

    first, second = ServeProcess(path), ServeProcess(other)
    try:
        send(ports[0], SLOW_POSTER, "One")
        eventually(claimed_by_first, "the first post claimed")
        first.signal(signal.SIGKILL)
        send(ports[1], MEMBERS[0], "Two")
        got = sink.wait_for(
            lambda got: (
                sum(m.message["Subject"] == "[test] Two" for m in got) >= 1
                and sum(m.message["Subject"] == "[test] One" for m in got) >= 1
            )
        )
    finally:
        first.stop()
        second.stop()
        app.engine.dispose()
    subjects = [m.message["Subject"] for m in got if m.message["Subject"].startswith("[test]")]
    assert subjects.index("[test] One") < subjects.index("[test] Two"), subjects
