"""Test harness: a real SMTP sink, a real running listserv, config files and mail helpers.

Nothing here is a mock: the sink is an aiosmtpd server on a loopback port that records what
it is sent, and ``RunningServer`` runs listserv's own ``Server`` on its own event loop in a
thread, talking to a real SQLite or PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import smtplib
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from click.testing import CliRunner
from sqlalchemy import event, func, select

from listserv.cli.main import main
from listserv.config import load_config
from listserv.server import Server, prepare
from listserv.store.models import Delivery, MemberEvent, utcnow

DOMAIN = "lists.example.org"
WAIT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.raw)  # type: ignore[return-value]


@dataclass
class Sink:
    """A real SMTP server that records every accepted transaction.

    ``rcpt_reply`` may map an address to the reply its RCPT gets (``"450 …"``, ``"550 …"``);
    ``data_reply``, when set, is the reply to every DATA. ``pipelining`` says whether EHLO
    offers PIPELINING; ``reads`` counts the reads of client data, so a test can tell whether
    commands came pipelined. ``drop_after_rcpts`` (once) drops the connection when a
    transaction has that many accepted RCPTs, ``drop_at_data`` (once) when the message has
    been received but not yet answered; ``data_gate`` (once) holds the next DATA until
    the event is set, counting it in ``held``. ``rcpt_log`` has every RCPT address seen.
    """

    host: str = "127.0.0.1"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    rcpt_reply: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    pipelining: bool = True
    drop_after_rcpts: int | None = None
    drop_at_data: bool = False
    data_gate: threading.Event | None = None
    held: int = 0
    reads: int = 0
    rcpt_log: list[str] = field(default_factory=list)
    connections: int = 0
    condition: threading.Condition = field(default_factory=threading.Condition)
    controller: Controller | None = None

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        with self.condition:
            self.rcpt_log.append(address.lower())
            self.condition.notify_all()
        reply = self.rcpt_reply.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        if len(envelope.rcpt_tos) == self.drop_after_rcpts:
            self.drop_after_rcpts = None
            server.transport.close()
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        if self.drop_at_data:
            self.drop_at_data = False
            server.transport.close()
            return "421 Closing"
        gate, self.data_gate = self.data_gate, None
        if gate is not None:
            with self.condition:
                self.held += 1
                self.condition.notify_all()
            await asyncio.to_thread(gate.wait, WAIT)
        with self.condition:
            self.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
            self.condition.notify_all()
        return "250 OK"

    def start(self) -> Sink:
        self.port = self.port or free_port()
        sink = self

        class Counting(SMTPServer):
            def connection_made(self, transport: Any) -> None:
                sink.connections += 1
                super().connection_made(transport)

            def data_received(self, data: bytes) -> None:
                sink.reads += 1
                super().data_received(data)

        class SinkController(Controller):
            def factory(self) -> SMTPServer:
                return Counting(self.handler, decode_data=False, enable_SMTPUTF8=True)

        self.controller = SinkController(self, hostname=self.host, port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = WAIT
    ) -> list[Received]:
        """Block until *predicate* holds for what was received; fails the test on timeout."""
        self.wait_until(lambda sink: predicate(sink.received), timeout)
        with self.condition:
            return list(self.received)

    def wait_until(self, predicate: Callable[[Sink], bool], timeout: float = WAIT) -> None:
        """Block until *predicate* holds for the sink (``held``, ``rcpt_log``…)."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out; received {len(self.received)} messages: "
                        + "; ".join(f"{r.mail_from}->{r.rcpt_tos}" for r in self.received)
                    )
                self.condition.wait(remaining)

    def wait_for_recipients(self, addresses: set[str], timeout: float = WAIT) -> list[Received]:
        """Block until every address in *addresses* got at least one message."""
        wanted = {a.lower() for a in addresses}
        return self.wait_for(
            lambda got: wanted <= {r.lower() for m in got for r in m.rcpt_tos}, timeout
        )

    def messages_to(self, address: str) -> list[Received]:
        with self.condition:
            return [m for m in self.received if address.lower() in (r.lower() for r in m.rcpt_tos)]

    def clear(self) -> None:
        with self.condition:
            self.received.clear()


def list_table(name: str, **settings: Any) -> dict[str, Any]:
    return {"name": name, "title": f"Test list {name}", **settings}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def write_config(
    directory: Path,
    database_url: str,
    sink: Sink | None,
    lists: list[dict[str, Any]],
    **sections: dict[str, Any],
) -> Path:
    """Write a config.toml; *sections* override or add keys per section (``server={…}``)."""
    data: dict[str, dict[str, Any]] = {
        "server": {
            "domain": DOMAIN,
            "listen": "127.0.0.1:0",
            "heartbeat": 0.5,
            "bounce_upkeep_interval": 0.5,
        },
        "database": {"url": database_url},
        "delivery": {
            "smarthost": sink.address if sink else "127.0.0.1:1",
            "retry_schedule": [0.2],
            "timeout": 10.0,
        },
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    lines = []
    for name, values in data.items():
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in values.items())
        lines.append("")
    for entry in lists:
        lines.append("[[lists]]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in entry.items())
        lines.append("")
    path = directory / "config.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    tomllib.loads(path.read_text(encoding="utf-8"))
    return path


class RunningServer:
    """listserv's real server on its own event loop in a background thread."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.config = load_config(config_path)
        self.app = prepare(self.config)
        self.server = Server(self.app)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.commits = 0
        self.committed = threading.Condition()
        event.listen(self.app.sessions, "after_commit", self._count_commit)

    def _count_commit(self, _session: Any) -> None:
        with self.committed:
            self.commits += 1
            self.committed.notify_all()

    def wait_for_state(
        self, predicate: Callable[[], Any], what: str = "", timeout: float = WAIT
    ) -> Any:
        """Block until *predicate* (a look at the database: a score, a row) returns something
        truthy; fails the test on timeout. It is checked again after each commit of the
        server, the only moment its database state can change (its heartbeat commits too, so
        a change made by another process is seen within a beat): no polling, no sleeps."""
        deadline = time.monotonic() + timeout
        while True:
            with self.committed:
                seen = self.commits
            value = predicate()
            if value:
                return value
            with self.committed:
                while self.commits == seen:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise AssertionError(f"timed out waiting for {what or predicate}")
                    self.committed.wait(remaining)

    def wait_until_delivered(self) -> None:
        """Block until no mail is being sent or due to be (routing several messages in one
        transaction queues their mail together, and batches go out in any order)."""

        def settled() -> bool:
            due = (Delivery.status == "sending") | (
                (Delivery.status == "queued") & (Delivery.next_attempt_at <= utcnow())
            )
            with self.app.sessions() as session:
                return not session.scalar(select(func.count()).select_from(Delivery).where(due))

        self.wait_for_state(settled, "the mail queued to be sent")

    def start(self) -> RunningServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(WAIT)
        return self

    @property
    def port(self) -> int:
        assert self.server.intake is not None
        return self.server.intake.port

    def stop(self) -> None:
        if self.loop.is_closed():  # stopped already (a test restarting the server)
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)
        self.loop.close()

    def smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, timeout=WAIT)

    def send(
        self, mail_from: str, rcpt_tos: list[str] | str, message: bytes | EmailMessage
    ) -> dict:
        """Send over SMTP; returns smtplib's refused-recipients dict (raises if all refused)."""
        raw = message if isinstance(message, bytes) else message.as_bytes(policy=policy.SMTP)
        with self.smtp() as client:
            return client.sendmail(mail_from, rcpt_tos, raw)


def make_message(
    sender: str = "alice@example.com",
    to: str = f"test@{DOMAIN}",
    subject: str = "Hello",
    body: str = "Hello, list.\n",
    **headers: str,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{time.monotonic_ns()}@example.com>"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


def cli(config_path: Path, *args: str, input: str | bytes | None = None) -> Any:
    """Run the real ``listserv`` command line in-process; returns click's Result. ``serve``
    sets up logging for the whole process: what it set is undone, for the tests after it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return CliRunner().invoke(main, ["--config", str(config_path), *args], input=input)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def members_of(config_path: Path, name: str) -> dict[str, dict[str, Any]]:
    """``listserv members list NAME --json``, by address."""
    import json

    result = cli(config_path, "members", "list", name, "--json")
    assert result.exit_code == 0, result.output
    return {m["address"]: m for m in json.loads(result.output)}


class ServeProcess:
    """``python -m listserv serve`` as a real subprocess (for kill -9 and SIGTERM), its log
    followed so a test can wait for a line instead of sleeping."""

    def __init__(self, config_path: Path, *options: str, env: dict[str, str] | None = None) -> None:
        """*env* adds to the environment (``LD_PRELOAD`` for libfaketime)."""
        root = Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(
            [sys.executable, "-m", "listserv", "--config", str(config_path), "serve", *options],
            env={**os.environ, "PYTHONPATH": str(root), **(env or {})},
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log: list[str] = []
        self.condition = threading.Condition()
        threading.Thread(target=self._follow, daemon=True).start()
        try:
            self.wait_for_log("listening on ")
        except AssertionError:
            self.stop()  # not left running after the test
            raise

    def _follow(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self.condition:
                self.log.append(line)
                self.condition.notify_all()

    def wait_for_log(self, text: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        with self.condition:
            while not any(text in line for line in self.log):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.process.poll() is not None:
                    raise AssertionError(f"no {text!r} in the log:\n" + "".join(self.log[-20:]))
                self.condition.wait(min(remaining, 0.5))

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 60) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def events(server: RunningServer) -> list[tuple[str, str, str]]:
    with server.app.sessions() as session:
        rows = session.scalars(select(MemberEvent).order_by(MemberEvent.id))
        return [(e.address, e.kind, e.outcome) for e in rows]


def add(server: RunningServer, *addresses: str) -> None:
    result = cli(server.config_path, "members", "add", "test", "--no-welcome", *addresses)
    assert result.exit_code == 0, result.output


def token_in(subject: str) -> str:
    """The token a confirmation names at the end of its Subject: "… (confirm TOKEN)"."""
    found = re.search(r"\((?:confirm|подтвердить|растау) ([a-z2-7]{32})\)$", subject)
    assert found, subject
    return found.group(1)


def token_of(confirmation: Received) -> str:
    return token_in(str(confirmation.message["Subject"]))


def eventually(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Wait for state another process changes (a row in the database), looked at again every
    50 ms until *timeout*; returns the first truthy value of *predicate*."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def second_config(path: Path, port: int, other_port: int) -> Path:
    """The config at *path* for a second ``serve`` process on the same database, listening
    on *other_port* instead of *port*."""
    other = path.parent / "second" / "config.toml"
    other.parent.mkdir(exist_ok=True)
    other.write_text(path.read_text().replace(str(port), str(other_port)))
    return other
