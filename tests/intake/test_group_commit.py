"""Group commit at intake: concurrent sessions' messages are committed together, each session
answered 250 only once the commit holding its message is done, and a group the database
refuses is answered 451 in every one of its sessions, with nothing of it stored."""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.policy import SMTP
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from support import DOMAIN, WAIT, RunningServer, list_table, make_message

from listserv.store.models import InboxMessage, ReceivedBody

LIST = f"test@{DOMAIN}"


def open_server(start_server) -> RunningServer:
    return start_server(lists=[list_table("test", posting="open")])


def ready_session(server: RunningServer) -> smtplib.SMTP:
    """A session that has had MAIL and RCPT accepted, ready for DATA."""
    client = server.smtp()
    client.ehlo()
    assert client.mail("a@x.example")[0] == 250
    assert client.rcpt(LIST)[0] == 250
    return client


def send_data(client: smtplib.SMTP, subject: str, replies: dict[str, tuple[int, bytes]]) -> None:
    raw = make_message("a@x.example", subject=subject).as_bytes(policy=SMTP)
    try:
        replies[subject] = client.data(raw)
    finally:
        client.close()


def stored_subjects(server: RunningServer) -> dict[int, str]:
    with server.app.sessions() as session:
        rows = session.execute(
            select(InboxMessage.id, ReceivedBody.raw).join(InboxMessage.body)
        ).all()
    return {i: raw.split(b"Subject: ", 1)[1].split(b"\r\n", 1)[0].decode() for i, raw in rows}


def eventually(predicate: Callable[[], bool], what: str) -> None:
    """Wait for in-process state the test cannot be told about (sessions queued at the
    committer), looking again every few milliseconds."""
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def carries(parameters: Any, subject: str) -> bool:
    """True when the statement's parameters hold a message with *subject* (at its start)."""
    if isinstance(parameters, dict):
        parameters = list(parameters.values())
    if isinstance(parameters, list | tuple):
        return any(carries(p, subject) for p in parameters)
    parameters = getattr(parameters, "obj", parameters)  # psycopg's Binary
    if isinstance(parameters, memoryview):  # how SQLite binds bytes
        parameters = parameters.tobytes()
    return isinstance(parameters, bytes) and f"Subject: {subject}".encode() in parameters


@contextmanager
def inserts_held(server: RunningServer, subject: str) -> Iterator[threading.Semaphore]:
    """Holds every inbox INSERT of a message whose subject begins with *subject* until the
    block ends; the semaphore is released once per INSERT held."""
    held = threading.Semaphore(0)
    release = threading.Event()
    inside = threading.Condition()
    holding = [0]

    def hold(*args: Any) -> None:
        if args[2].startswith("INSERT INTO received_bodies") and carries(args[3], subject):
            with inside:
                holding[0] += 1
            held.release()
            release.wait(WAIT)
            with inside:
                holding[0] -= 1
                inside.notify_all()

    event.listen(server.app.engine, "before_cursor_execute", hold)
    try:
        yield held
    finally:
        release.set()
        # A listener may only be removed once no thread is running it.
        with inside:
            inside.wait_for(lambda: holding[0] == 0, WAIT)
        event.remove(server.app.engine, "before_cursor_execute", hold)


def start(target: Callable[..., None], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def keep_the_writer_busy(
    server: RunningServer, replies: dict[str, tuple[int, bytes]], held: threading.Semaphore
) -> threading.Thread:
    """Keeps the committer busy with one held message (``early``), so the sessions that come
    next wait together for the next group."""
    thread = start(send_data, ready_session(server), "early", replies)
    assert held.acquire(timeout=WAIT)
    return thread


def test_concurrent_sessions_are_committed_together_and_each_stored_once(start_server) -> None:
    server = open_server(start_server)
    committer = server.server.intake.handler.committer  # type: ignore[union-attr]
    replies: dict[str, tuple[int, bytes]] = {}
    clients = [ready_session(server) for _ in range(24)]
    with inserts_held(server, "early") as held:
        threads = [keep_the_writer_busy(server, replies, held)]
        threads += [start(send_data, c, f"post {i}", replies) for i, c in enumerate(clients)]
        eventually(lambda: len(committer.pending) == 24, "24 sessions waiting for a commit")
        assert replies == {}  # nobody is answered before their message is committed
    for thread in threads:
        thread.join(WAIT)
    assert {code for code, _ in replies.values()} == {250}
    queued_as = {s: int(text.rsplit(b" ", 1)[1]) for s, (_, text) in replies.items()}
    stored = stored_subjects(server)
    assert sorted(stored.values()) == sorted(replies)  # every message, each exactly once
    assert all(stored[i] == subject for subject, i in queued_as.items())
    assert committer.commits == 2  # the 24 went in one commit


def test_a_database_error_fails_every_session_of_its_group(start_server) -> None:
    server = open_server(start_server)
    committer = server.server.intake.handler.committer  # type: ignore[union-attr]
    replies: dict[str, tuple[int, bytes]] = {}

    def refuse_group(*args: Any) -> None:
        if args[2].startswith("INSERT INTO received_bodies") and carries(args[3], "group"):
            raise OperationalError(args[2], {}, Exception("disk I/O error"))

    clients = [ready_session(server) for _ in range(5)]
    event.listen(server.app.engine, "before_cursor_execute", refuse_group)
    with inserts_held(server, "early") as held:
        threads = [keep_the_writer_busy(server, replies, held)]
        threads += [start(send_data, c, f"group {i}", replies) for i, c in enumerate(clients)]
        eventually(lambda: len(committer.pending) == 5, "5 sessions waiting for a commit")
    for thread in threads:
        thread.join(WAIT)
    event.remove(server.app.engine, "before_cursor_execute", refuse_group)
    assert replies.pop("early")[0] == 250
    assert {s: code for s, (code, _) in replies.items()} == {f"group {i}": 451 for i in range(5)}
    assert sorted(stored_subjects(server).values()) == ["early"]
    # The clients try again, and each message is then stored once.
    for subject in list(replies):
        send_data(ready_session(server), subject, replies)
    assert {code for code, _ in replies.values()} == {250}
    assert sorted(stored_subjects(server).values()) == sorted(["early", *replies])
