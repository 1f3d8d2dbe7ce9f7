"""``[server] workers``: the serve process takes mail and worker processes route and deliver
it. Real ``serve`` subprocesses, the real sink, both databases."""

from __future__ import annotations

import os
import re
import signal
import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from support import DOMAIN, ServeProcess, Sink, cli, eventually, free_port, make_message

from listserv.config import load_config
from listserv.server import prepare
from listserv.store.models import Instance

POSTER = "poster@x.example"
MEMBERS = {POSTER, "ann@m.example", "bob@m.example"}


@pytest.fixture
def config(config_file: Callable[..., Path]) -> Path:
    path = config_file(server={"listen": f"127.0.0.1:{free_port()}", "workers": 1})
    result = cli(path, "members", "add", "--no-welcome", "test", *sorted(MEMBERS))
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture
def serve(config: Path) -> Iterator[ServeProcess]:
    process = ServeProcess(config)
    yield process
    process.stop()


def post(config: Path, subject: str) -> None:
    port = int(load_config(config).server.listen.rsplit(":", 1)[1])
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail(POSTER, f"test@{DOMAIN}", make_message(POSTER, subject=subject).as_bytes())


def copies(sink: Sink, subject: str) -> set[str]:
    return {r for m in sink.received if subject in str(m.message["Subject"]) for r in m.rcpt_tos}


def worker_pids(serve: ServeProcess) -> list[int]:
    return [int(pid) for pid in re.findall(r"worker 1 started \(pid (\d+)\)", "".join(serve.log))]


def instance_pids(config: Path) -> set[int]:
    app = prepare(load_config(config))
    try:
        with app.sessions() as session:
            return set(session.scalars(select(Instance.pid)))
    finally:
        app.engine.dispose()


def test_a_worker_routes_and_delivers_what_serve_takes(
    serve: ServeProcess, config: Path, sink: Sink
) -> None:
    serve.wait_for_log("worker 1 started")
    post(config, "first")
    sink.wait_until(lambda s: copies(s, "first") == MEMBERS)
    # Only the worker claims work: the process that takes mail routes none of it.
    assert instance_pids(config) == set(worker_pids(serve))


def test_a_worker_killed_is_started_again(serve: ServeProcess, config: Path, sink: Sink) -> None:
    serve.wait_for_log("worker 1 started")
    first = worker_pids(serve)[0]
    eventually(lambda: instance_pids(config) == {first}, "the worker's heartbeat")
    os.kill(first, signal.SIGKILL)
    # Dead within seconds of its start: started again after a pause, longer each time.
    serve.wait_for_log(
        f"worker 1 (pid {first}) stopped with exit code -9: starting it again in 1 s"
    )
    eventually(lambda: len(worker_pids(serve)) == 2, "a new worker")
    second = worker_pids(serve)[1]
    os.kill(second, signal.SIGKILL)
    serve.wait_for_log(
        f"worker 1 (pid {second}) stopped with exit code -9: starting it again in 2 s"
    )
    eventually(lambda: len(worker_pids(serve)) == 3, "a third worker")
    post(config, "after the kill")
    sink.wait_until(lambda s: copies(s, "after the kill") == MEMBERS)


def test_sigterm_stops_the_workers_too(serve: ServeProcess, config: Path) -> None:
    serve.wait_for_log("worker 1 started")
    eventually(lambda: instance_pids(config), "the worker's heartbeat")
    serve.signal(signal.SIGTERM)
    assert serve.wait() == 0
    # The worker gave back its claims as it stopped, before serve exited.
    assert instance_pids(config) == set()


def test_workers_stop_when_serve_is_killed(serve: ServeProcess, config: Path) -> None:
    serve.wait_for_log("worker 1 started")
    eventually(lambda: instance_pids(config), "the worker's heartbeat")
    serve.signal(signal.SIGKILL)
    # The worker still writes to the log serve had (its stderr).
    gone = "the serve process that takes mail is gone: stopping"
    eventually(lambda: any(gone in line for line in serve.log), "the worker to notice")
    eventually(lambda: instance_pids(config) == set(), "the worker to give back its claims")
