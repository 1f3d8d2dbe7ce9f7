"""Fan-out benchmark: one 5 KB post to a list of N members, delivered to Postfix's smtp-sink.

    python bench/fanout.py 100000 [--database sqlite|postgresql] [--connections 4]

Starts ``python -m listserv serve`` as a subprocess on a fresh database, the C ``smtp-sink`` as
the smarthost (a Python sink would be the bottleneck), posts one message over SMTP and prints
the seconds from the end of the post's DATA to the last message at the sink (its last RCPT
comes just before), RCPTs per second and the server's peak RSS. It then checks the sink saw
every member exactly once.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from listserv.config import load_config  # noqa: E402
from listserv.server import prepare  # noqa: E402
from listserv.store.lists import get_list  # noqa: E402
from listserv.store.models import Member  # noqa: E402

SMTP_SINK = "/usr/sbin/smtp-sink"
DOMAIN = "lists.example.org"
PG_URL = os.environ.get("LISTSERV_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BATCH = 500


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not start listening on port {port}")


def start_listserv(config: Path, command: str, port: int, nice: int = 0) -> subprocess.Popen:
    """``python -m listserv --config CONFIG COMMAND`` from this tree (at niceness *nice*),
    once it listens on *port*."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    niced = ["nice", "-n", str(nice)] if nice else []
    listserv = [*niced, sys.executable, "-m", "listserv", "--config", str(config), command]
    process = subprocess.Popen(listserv, env=env)
    wait_for_port(port, process, f"listserv {command}")
    return process


class SinkCounter:
    """Follows smtp-sink's running counters (``-c``): how many messages came, and when."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.messages = 0
        # (messages so far, when) at each change: a run's end is read back after the fact.
        self.arrivals: list[tuple[int, float]] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        assert self.process.stdout is not None
        field = b""
        while chunk := self.process.stdout.read1(4096):
            for byte in chunk:
                if byte in b"\r\n ":
                    if field.startswith(b"mesg="):
                        self._count(int(field[5:]))
                    field = b""
                else:
                    field += bytes([byte])

    def _count(self, messages: int) -> None:
        with self.changed:
            if messages > self.messages:
                self.messages = messages
                self.arrivals.append((messages, time.monotonic()))
                self.changed.notify_all()

    def wait_for(self, messages: int, timeout: float) -> float | None:
        """The time (``time.monotonic``) the sink had got *messages* messages since it
        started, or None if it has not within *timeout* seconds."""
        with self.changed:
            if not self.changed.wait_for(lambda: self.messages >= messages, timeout):
                return None
            return next(when for count, when in self.arrivals if count >= messages)


def start_sink(port: int, dump: Path | None = None) -> subprocess.Popen:
    """smtp-sink printing its counters; with *dump*, writing what it gets there (a file
    its user, nobody when we are root, may write)."""
    if not Path(SMTP_SINK).exists():
        sys.exit(f"{SMTP_SINK} is missing: apt-get install postfix (the daemon need not run)")
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    dumping = ["-D", str(dump)] if dump else []
    command = [SMTP_SINK, *user, "-c", *dumping, f"127.0.0.1:{port}", "1024"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def make_database(kind: str, directory: Path) -> tuple[str, str | None]:
    """The database URL, and the PostgreSQL schema to drop afterwards."""
    if kind == "sqlite":
        return f"sqlite:///{directory / 'bench.db'}", None
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    return f"{PG_URL}?options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str | None) -> None:
    if schema:
        with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


def base_config(url: str, listen: int, sink: int) -> str:
    """The [server], [database] and [delivery] sections of a benchmark's server."""
    return f"""[server]
domain = "{DOMAIN}"
listen = "127.0.0.1:{listen}"
log_level = "warning"

[database]
url = "{url}"

[delivery]
smarthost = "127.0.0.1:{sink}"
"""


def write_config(
    path: Path, url: str, listen: int, sink: int, connections: int, list_settings: str = ""
) -> None:
    """A server delivering in batches of 500 with *connections* connections, and the open
    list "bench" (with *list_settings*, lines of TOML, besides the footer)."""
    path.write_text(
        base_config(url, listen, sink)
        + f"""max_recipients = {BATCH}
connections = {connections}

[[lists]]
name = "bench"
posting = "open"
footer = true
"""
        + list_settings,
        encoding="utf-8",
    )


def member_address(i: int) -> str:
    return f"member{i}@d{i % 97}.example"


def add_members(config_path: Path, count: int) -> None:
    app = prepare(load_config(config_path))
    with app.sessions() as session, session.begin():
        list_id = get_list(session, "bench", DOMAIN).id
        for start in range(0, count, 10_000):
            session.execute(
                insert(Member),
                [
                    {"list_id": list_id, "address": member_address(i), "delivery": "regular"}
                    for i in range(start, min(count, start + 10_000))
                ],
            )
    app.engine.dispose()


def post(port: int) -> bytes:
    body = "".join(
        f"Line {i:03d} of a five kilobyte test post, in plain text.\n" for i in range(88)
    )
    return (
        f"From: {member_address(0)}\r\nTo: bench@{DOMAIN}\r\nSubject: Fan-out benchmark\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@example>\r\n\r\n"
    ).encode() + body.replace("\n", "\r\n").encode()


def send_post(port: int) -> tuple[float, int]:
    """Posts one message to the list over SMTP: when its DATA ended, and its size."""
    message = post(port)
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.ehlo()
        client.mail(member_address(0))
        client.rcpt(f"bench@{DOMAIN}")
        started = time.monotonic()
        code, _ = client.data(message)
        assert code == 250, code
    return started, len(message)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def check_dump(dump: Path, count: int) -> str:
    rcpts = [line for line in dump.read_bytes().splitlines() if line.startswith(b"X-Rcpt-Args: ")]
    unique = len(set(rcpts))
    return f"sink got {len(rcpts)} RCPTs, {unique} distinct, expected {count}" + (
        "" if len(rcpts) == unique == count else "  <-- MISMATCH"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("members", type=int)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--profile", metavar="FILE", help="record the server with py-spy")
    args = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="listserv-bench-"))
    dump_dir = Path(tempfile.mkdtemp(prefix="listserv-sink-", dir="/dev/shm"))
    dump_dir.chmod(0o777)
    dump = dump_dir / "dump"
    url, schema = make_database(args.database, directory)
    listen, sink_port = free_port(), free_port()
    config_path = directory / "config.toml"
    write_config(config_path, url, listen, sink_port, args.connections)
    sink = server = profiler = None
    try:
        add_members(config_path, args.members)
        sink = start_sink(sink_port, dump)
        counter = SinkCounter(sink)
        wait_for_port(sink_port, sink, "smtp-sink")
        server = start_listserv(config_path, "serve", listen)
        if args.profile:
            spy = ["py-spy", "record", "-r", "200", "-f", "raw", "-d", "15"]
            profiler = subprocess.Popen([*spy, "-o", args.profile, "--pid", str(server.pid)])
        started, size = send_post(listen)
        finished = counter.wait_for(math.ceil(args.members / BATCH), 600)
        if finished is None:
            sys.exit("the sink did not get every message within 10 minutes")
        seconds = finished - started
        rss = peak_rss_mb(server.pid)
        print(
            f"{args.members} members, {args.database}, {args.connections} connections, "
            f"{size} byte post"
        )
        print(f"end of DATA -> last message at the sink: {seconds:.2f} s")
        print(f"RCPTs per second: {args.members / seconds:,.0f}")
        print(f"server peak RSS: {rss:.0f} MB")
        print(check_dump(dump, args.members))
        if args.profile:
            profiler.wait()
    finally:
        tear_down([server] if server is not None else [], sink, schema, directory, dump_dir)


def tear_down(
    servers: list[subprocess.Popen],
    sink: subprocess.Popen | None,
    schema: str | None,
    *directories: Path,
) -> None:
    """Stop the servers still running (SIGTERM) and the sink, drop the database schema and
    remove the scratch directories."""
    for server in servers:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(120)
    if sink is not None:
        sink.kill()
        sink.wait()
    drop_schema(schema)
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
