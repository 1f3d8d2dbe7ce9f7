"""Secrets at rest: what a copy of the database, or the log, would give away."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import select
from support import DOMAIN, Received, RunningServer, Sink, make_message, token_of

from listserv.store.models import Outgoing

REQUEST = f"test-request@{DOMAIN}"


def ask_to_subscribe(server: RunningServer, sink: Sink, address: str) -> str:
    """Subscribe by mail; the token of the confirmation request that comes back."""
    server.send(address, REQUEST, make_message(address, REQUEST, "subscribe", "subscribe\n"))

    def confirmations(got: list[Received]) -> list[Received]:
        return [
            r for r in got if address in r.rcpt_tos and r.message["X-Listserv-Notice"] == "confirm"
        ]

    (confirmation,) = confirmations(sink.wait_for(confirmations))
    return token_of(confirmation)


def test_sent_confirmation_requests_keep_no_token_in_the_database(start_server, sink: Sink) -> None:
    server: RunningServer = start_server()
    token = ask_to_subscribe(server, sink, "new@x.example")

    def bodies() -> list[bytes]:
        with server.app.sessions() as session:
            return list(session.scalars(select(Outgoing.raw)))

    server.wait_for_state(
        lambda: all(token.encode() not in raw for raw in bodies()), what="the body dropped"
    )
    # The token still works: only the copy of the mail is gone.
    confirm = f"test-confirm+{token}@{DOMAIN}"
    server.send("new@x.example", confirm, make_message("new@x.example", confirm, "Re: confirm"))
    sink.wait_for(lambda got: any(r.message["X-Listserv-Notice"] == "welcome" for r in got))


def test_intake_never_logs_a_live_token(start_server, sink: Sink, caplog) -> None:
    server: RunningServer = start_server()
    token = ask_to_subscribe(server, sink, "new@x.example")
    confirm = f"test-confirm+{token}@{DOMAIN}"
    with caplog.at_level(logging.INFO, logger="listserv"):
        server.send("new@x.example", confirm, make_message("new@x.example", confirm, "yes"))
        sink.wait_for(lambda got: any(r.message["X-Listserv-Notice"] == "welcome" for r in got))
    assert "test-confirm+…@" in caplog.text
    assert token not in caplog.text


def test_the_sqlite_database_is_readable_by_its_owner_only(
    start_server, sink: Sink, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("file modes are SQLite's")
    server: RunningServer = start_server()
    ask_to_subscribe(server, sink, "new@x.example")
    path = Path(database_url.split("///", 1)[1])
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        assert name.exists() and name.stat().st_mode & 0o777 == 0o600, name
