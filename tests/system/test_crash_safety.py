"""Accepted mail survives kill -9 and SIGTERM: a real ``python -m listserv serve`` subprocess,
the real sink, both databases."""

from __future__ import annotations

import signal
import smtplib
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support import DOMAIN, ServeProcess, Sink, cli, free_port, make_message

from listserv.config import load_config
from listserv.server import prepare
from listserv.store.models import Delivery, InboxMessage, Instance

POSTER = "poster@x.example"
EVERYONE = {POSTER, *(f"member{i}@m.example" for i in range(49))}


@pytest.fixture
def serve_config(config_file: Callable[..., Path]) -> Path:
    """A config for a subprocess: a fixed port, and a short heartbeat so that a killed
    process's work is taken over quickly. Batches of 10, one connection."""
    path = config_file(
        server={"listen": f"127.0.0.1:{free_port()}", "heartbeat": 0.3},
        delivery={"max_recipients": 10, "connections": 1},
    )
    result = cli(path, "members", "add", "--no-welcome", "test", *sorted(EVERYONE))
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def serve(serve_config: Path) -> Iterator[Callable[[], ServeProcess]]:
    processes: list[ServeProcess] = []

    def start() -> ServeProcess:
        processes.append(ServeProcess(serve_config))
        return processes[-1]

    yield start
    for process in processes:
        process.stop()


def port_of(path: Path) -> int:
    return int(load_config(path).server.listen.rsplit(":", 1)[1])


def delivered(sink: Sink) -> Counter[str]:
    return Counter(r.lower() for m in sink.received for r in m.rcpt_tos)


def test_kill_9_mid_fan_out_then_restart_delivers_to_everyone(
    serve, serve_config: Path, sink: Sink
) -> None:
    gate = threading.Event()
    sink.data_gate = gate
    first = serve()
    try:
        with smtplib.SMTP("127.0.0.1", port_of(serve_config)) as client:
            client.sendmail(POSTER, f"test@{DOMAIN}", make_message(POSTER).as_bytes())
        # The first of five batches is at the sink, waiting for its DATA reply.
        sink.wait_until(lambda s: s.held == 1)
        first.signal(signal.SIGKILL)
        assert first.wait() == -signal.SIGKILL
    finally:
        gate.set()
    serve()
    got = sink.wait_for_recipients(EVERYONE)
    duplicates = {address for address, n in delivered(sink).items() if n > 1}
    # Only the batch in flight at the kill may arrive twice.
    assert duplicates <= {r.lower() for r in got[0].rcpt_tos}


def test_sigterm_drains_intake_and_stops_cleanly(serve, serve_config: Path, sink: Sink) -> None:
    server = serve()
    with smtplib.SMTP("127.0.0.1", port_of(serve_config)) as client:
        client.ehlo()
        client.mail(POSTER)
        client.rcpt(f"test@{DOMAIN}")
        server.signal(signal.SIGTERM)
        server.wait_for_log("stopping")
        code, _ = client.data(make_message(POSTER).as_bytes())
        assert code == 250
    assert server.wait() == 0

    app = prepare(load_config(serve_config))
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Instance)) == 0
        assert session.scalar(select(func.count()).where(Delivery.status == "sending")) == 0
        assert (
            session.scalar(
                select(func.count()).where(
                    InboxMessage.status == "new", InboxMessage.claimed_by.is_not(None)
                )
            )
            == 0
        )
        assert session.scalar(select(func.count()).select_from(InboxMessage)) == 1
    app.engine.dispose()

    restarted = serve()
    sink.wait_for_recipients(EVERYONE)
    assert delivered(sink) == Counter({address: 1 for address in EVERYONE})
    restarted.signal(signal.SIGTERM)
    assert restarted.wait() == 0
