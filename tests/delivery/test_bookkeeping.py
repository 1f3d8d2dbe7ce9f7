"""A batch that was sent is never sent again because recording its outcome failed: the
database refuses the write (a trigger, on real SQLite and PostgreSQL) and the worker backs
off and tries again, then settles for the batch's status. A real ``serve`` subprocess and the
real sink."""

from __future__ import annotations

import smtplib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dbfaults import allow, refuse
from sqlalchemy import select
from support import DOMAIN, WAIT, ServeProcess, Sink, cli, eventually, free_port, make_message

from listserv.app import App
from listserv.config import load_config
from listserv.server import prepare
from listserv.store.models import Delivery

MEMBERS = sorted(f"member{i}@m.example" for i in range(3))
REFUSED = "gone@m.example"
BLOCKED = "recording blocked"


def wait_for_log_count(process: ServeProcess, needle: str, count: int) -> None:
    deadline = time.monotonic() + WAIT
    with process.condition:
        while sum(needle in line for line in process.log) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("".join(process.log[-20:]))
            process.condition.wait(remaining)


@pytest.fixture
def setup(config_file: Callable[..., Path], sink: Sink) -> Iterator[tuple[Path, App, int]]:
    port = free_port()
    path = config_file(server={"listen": f"127.0.0.1:{port}"}, delivery={"connections": 1})
    assert cli(path, "members", "add", "--no-welcome", "test", *MEMBERS, REFUSED).exit_code == 0
    sink.rcpt_reply[REFUSED] = "550 5.1.1 no such user"
    app = prepare(load_config(path))
    yield path, app, port
    app.engine.dispose()


def post(port: int, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        message = make_message(MEMBERS[0], subject=subject)
        client.sendmail(MEMBERS[0], f"test@{DOMAIN}", message.as_bytes())


def copies(sink: Sink, subject: str) -> Counter[str]:
    return Counter(r for m in sink.received if m.message["Subject"] == subject for r in m.rcpt_tos)


def test_a_sent_batch_whose_outcome_cannot_be_recorded_is_not_sent_again(
    setup: tuple[Path, App, int], sink: Sink
) -> None:
    path, app, port = setup
    refuse(app, "blocked", "deliveries", "UPDATE", "NEW.status IN ('sent', 'failed')", BLOCKED)
    process = ServeProcess(path)
    try:
        post(port, "Once")
        sink.wait_for_recipients(set(MEMBERS))
        wait_for_log_count(process, BLOCKED, 3)
        allow(app, "blocked", "deliveries")
        post(port, "Later")
        sink.wait_for(lambda got: copies(sink, "[test] Later") == Counter(MEMBERS))
    finally:
        process.stop()
    assert copies(sink, "[test] Once") == Counter(MEMBERS)


def test_bookkeeping_that_keeps_failing_ends_with_the_batch_marked_sent(
    setup: tuple[Path, App, int], sink: Sink
) -> None:
    path, app, port = setup
    # The refused recipient can never be written down; the batch's own status can.
    refuse(app, "blocked", "recipient_failures", "INSERT", "1 = 1", BLOCKED)
    process = ServeProcess(path)
    try:
        post(port, "Once")

        def finished() -> list[tuple[str, str]]:
            with app.sessions() as session:
                query = select(Delivery.status, Delivery.last_error)
                return [tuple(r) for r in session.execute(query) if r[0] in ("sent", "failed")]

        ((status, error),) = eventually(finished, "the batch to be finished")
        post(port, "Later")
        sink.wait_for(lambda got: copies(sink, "[test] Later") == Counter(MEMBERS))
    finally:
        process.stop()
    assert status == "sent"
    assert error.startswith("outcome recorded only in part")
    assert copies(sink, "[test] Once") == Counter(MEMBERS)
