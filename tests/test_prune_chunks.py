"""Housekeeping on a database that has grown for years: it deletes in chunks of one
transaction each (so intake and heartbeats get the write lock in between), and every foreign
key it deletes by is indexed. Both databases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, insert, inspect, select

from listserv.config import load_config
from listserv.housekeeping import PRUNE_CHUNK, prune
from listserv.server import prepare
from listserv.store.models import InboxMessage, Outgoing, ReceivedBody, utcnow

OLD = utcnow() - timedelta(days=400)


def test_a_large_prune_commits_chunk_by_chunk(config_file: Callable[..., Path]) -> None:
    app = prepare(load_config(config_file()))
    count = PRUNE_CHUNK * 2 + 500
    with app.engine.begin() as connection:
        # One transaction's bytes for them all: they go with the last of its messages.
        body_id = connection.scalar(
            insert(ReceivedBody).values(raw=b"x", size=1).returning(ReceivedBody.id)
        )
        rows = [
            {"mail_from": "a@x.example", "rcpt_to": "test@x", "body_id": body_id, "status": "done"}
            | {"received_at": OLD}
            for _ in range(count)
        ]
        connection.execute(insert(InboxMessage), rows)
    commits: list[Any] = []

    def count_commit(session: Any) -> None:
        commits.append(session)

    event.listen(app.sessions, "after_commit", count_commit)
    pruned = prune(app)
    assert pruned["messages"] == count
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(InboxMessage)) == 0
        assert session.scalar(select(func.count()).select_from(ReceivedBody)) == 0
        assert session.scalar(select(func.count()).select_from(Outgoing)) == 0
    # Three chunks of messages, and one transaction for each other kind of row.
    assert len(commits) >= 3 + 5
    app.engine.dispose()


def test_every_foreign_key_housekeeping_deletes_by_is_indexed(
    config_file: Callable[..., Path],
) -> None:
    app = prepare(load_config(config_file()))
    inspector = inspect(app.engine)

    def leading(table: str) -> set[str]:
        return {index["column_names"][0] for index in inspector.get_indexes(table)}

    assert "outgoing_id" in leading("deliveries")
    assert "outgoing_id" in leading("recipient_failures")
    for table in ("outgoing", "held_messages", "digest_entries", "member_events"):
        assert "message_id" in leading(table), table
    assert "received_at" in leading("messages")
    assert "created_at" in leading("outgoing")
    app.engine.dispose()
