"""A message whose processing keeps failing on a database error is tried a few times, then
marked failed with the error (and kept); the messages after it are not held up."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from support import DOMAIN, Sink, cli, make_message

from listserv.config import load_config
from listserv.intake.router import MAX_ATTEMPTS
from listserv.server import prepare
from listserv.store.db import transaction
from listserv.store.models import InboxMessage


def test_a_message_that_keeps_failing_is_marked_failed_and_the_queue_moves_on(
    start_server, sink: Sink
) -> None:
    server = start_server()
    cli(server.config_path, "members", "add", "--no-welcome", "test", "a@x.example")

    def poisoned(session: Session) -> None:
        for row in list(session.identity_map.values()):
            if isinstance(row, InboxMessage) and b"Poison" in row.raw:
                raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    event.listen(server.app.sessions, "before_commit", poisoned)
    server.send("a@x.example", f"test@{DOMAIN}", make_message("a@x.example", subject="Poison"))
    server.send("a@x.example", f"test@{DOMAIN}", make_message("a@x.example", subject="Fine"))
    got = sink.wait_for(lambda got: any(m.message["Subject"] == "[test] Fine" for m in got))
    assert [m.message["Subject"] for m in got] == ["[test] Fine"]
    with server.app.sessions() as session:
        poison = session.scalar(select(InboxMessage).where(InboxMessage.id == 1))
        assert poison is not None and b"Poison" in poison.raw
        assert (poison.status, poison.attempts) == ("failed", MAX_ATTEMPTS)
        assert poison.outcome == f"failed after {MAX_ATTEMPTS} attempts: disk I/O error"


def test_queue_status_counts_the_inbox(config_file) -> None:
    path = config_file()
    app = prepare(load_config(path))
    with transaction(app.sessions) as session:
        for status in ("new", "new", "done", "failed", "new"):
            session.add(
                InboxMessage(mail_from="", rcpt_to=f"test@{DOMAIN}", raw=b"", status=status)
            )
    app.engine.dispose()
    status: dict[str, Any] = json.loads(cli(path, "queue", "status", "--json").output)
    assert status["inbox"] == 3
