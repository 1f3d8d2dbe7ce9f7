"""Migration 0010 moves the bytes of the messages already received into ``received_bodies``
and drops ``messages.raw``, losing nothing: not the bytes, not the rows of other tables that
refer to the messages (SQLite rebuilds the table, which with foreign keys on would have
deleted held posts). Both databases."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, MetaData, Table, func, insert, select

from listserv.intake.committer import insert_rows, received
from listserv.store.db import make_engine, session_factory, upgrade
from listserv.store.models import HeldMessage, InboxMessage, Outgoing, ReceivedBody, utcnow

BEFORE = "0009_portal"


def add(connection: Connection, table: str, **values: Any) -> int:
    """A row written with the schema as it was (reflected), not as the models say now."""
    reflected = Table(table, MetaData(), autoload_with=connection)
    return int(connection.execute(insert(reflected).values(**values)).inserted_primary_key[0])


def test_existing_messages_keep_their_bytes_and_what_refers_to_them(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine, BEFORE)
    now = utcnow()
    with engine.begin() as connection:
        list_id = add(connection, "lists", name="test", settings={}, created_at=now)
        ids = [
            add(
                connection,
                "messages",
                received_at=now,
                mail_from="a@x.example",
                rcpt_to=f"{name}@lists.example.org",
                raw=f"Subject: {name}\r\n\r\n{name}\r\n".encode(),
                status=status,
                outcome="",
            )
            for name, status in (("held", "done"), ("sent", "done"), ("waiting", "new"))
        ]
        add(
            connection,
            "held_messages",
            list_id=list_id,
            message_id=ids[0],
            sender="a@x.example",
            subject="held",
            rule="moderated",
            reason="",
            held_at=now,
            status="pending",
            decided_by="",
            decided_via="",
            decision_reason="",
        )
        add(
            connection,
            "outgoing",
            list_id=list_id,
            kind="post",
            mail_from="test-bounces@lists.example.org",
            raw=b"x",
            created_at=now,
            message_id=ids[1],
            personalized=False,
            footer_marker="",
        )
    upgrade(engine)
    sessions = session_factory(engine)
    with sessions() as session:
        stored = {m.id: m.raw for m in session.scalars(select(InboxMessage))}
        assert stored == {
            i: f"Subject: {n}\r\n\r\n{n}\r\n".encode()
            for i, n in zip(ids, ("held", "sent", "waiting"), strict=True)
        }
        assert session.scalars(select(ReceivedBody.size).order_by(ReceivedBody.id)).all() == [
            len(stored[i]) for i in ids
        ]
        assert session.scalars(select(HeldMessage.message_id)).all() == [ids[0]]
        assert session.scalars(select(Outgoing.message_id)).all() == [ids[1]]
    # The next message gets a body of its own, after those given their messages' ids.
    (new_id,) = insert_rows(sessions, [received("b@x.example", ["t@x"], b"new", None, None)])
    with sessions() as session:
        assert session.get(InboxMessage, new_id).raw == b"new"  # type: ignore[union-attr]
        assert session.scalar(select(func.count()).select_from(ReceivedBody)) == 4
    engine.dispose()
