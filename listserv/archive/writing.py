"""Writing an import's posts, a batch a transaction: the rows of the posts not archived yet,
each in its thread as far as the posts before it tell, and their search words, by COPY on
PostgreSQL and ``executemany`` on SQLite."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, TypeDecorator, func, insert, select, text
from sqlalchemy.orm import Session

from listserv.archive.store import ArchiveEntry, count_in_months
from listserv.archive.threading import Headers, Placing
from listserv.store.db import take_write_lock
from listserv.store.models import ArchivedMessage, ArchiveSearchText

THREAD_COLUMNS = (
    "id",
    "message_id",
    "in_reply_to",
    "references",
    "subject_key",
    "date",
    "parent_id",
    "thread_id",
)


def thread_rows(session: Session, list_id: int) -> Sequence[Any]:
    """What threading reads of every post of the list (not the posts' bytes)."""
    m = ArchivedMessage
    columns = [getattr(m, name) for name in THREAD_COLUMNS]
    return session.execute(select(*columns).where(m.list_id == list_id)).all()


def row_headers(row: Any) -> Headers:
    return Headers(
        row.message_id, row.in_reply_to, tuple(row.references.split()), row.subject_key, row.date
    )


class ListThreads:
    """The list's posts as the import goes: the id and thread of each (by Message-ID), and
    where a new post goes among them."""

    def __init__(self, rows: Sequence[Any] = ()) -> None:
        self.placing = Placing()
        self.places: dict[str, tuple[int, int]] = {}  # Message-ID: id, thread's id
        for row in sorted(rows, key=lambda r: r.id):
            self.add(row_headers(row), row.id, row.thread_id)

    def add(self, headers: Headers, id_: int, thread_id: int) -> None:
        self.placing.add(headers)
        self.places[headers.message_id] = (id_, thread_id)

    def place(self, headers: Headers, id_: int) -> tuple[int | None, int]:
        """The parent's id and the thread's of a new post with this id, now known."""
        parent = self.placing.parent(headers)
        parent_id, thread_id = self.places[parent] if parent else (None, id_)
        self.add(headers, id_, thread_id)
        return parent_id, thread_id


def add_entries(
    session: Session, list_id: int, entries: list[ArchiveEntry], threads: ListThreads
) -> int:
    """Insert the posts not archived yet, each in its thread among the posts before it (the
    import threads the whole list again at its end, which moves the few a later post
    adopts); how many. One transaction: a batch is written whole or not at all."""
    take_write_lock(session)  # SQLite: the ids are counted from the last one
    new = not_archived(session, list_id, entries)
    if not new:
        return 0
    rows = []
    for id_, entry in zip(new_ids(session, len(new)), new, strict=True):
        parent_id, thread_id = threads.place(entry.headers, id_)
        row = {**entry.columns, "id": id_, "list_id": list_id, "parent_id": parent_id}
        rows.append({**row, "thread_id": thread_id, "removed_reason": ""})
    words = [
        {"archived_id": row["id"], "list_id": list_id, "words": entry.words}
        for row, entry in zip(rows, new, strict=True)
    ]
    if session.get_bind().dialect.name == "postgresql":
        copy_rows(session, rows, words)
    else:
        session.execute(insert(ArchivedMessage.__table__), rows)
        insert_words(session, words)
    count_in_months(session, list_id, [e.columns["date"] for e in new])
    return len(new)


def insert_words(session: Session, words: list[dict[str, Any]]) -> None:
    """SQLite: the words, and their FTS5 index in one statement for the batch rather than by
    the trigger row by row (a third less work): the trigger is dropped and made again, as
    it was, within the batch's transaction, which holds the write lock, so no other writer
    ever finds it missing."""
    trigger = session.scalar(
        text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :name"),
        {"name": FTS_TRIGGER},
    )
    session.execute(text(f"DROP TRIGGER {FTS_TRIGGER}"))
    session.execute(insert(ArchiveSearchText.__table__), words)
    session.execute(
        text(
            "INSERT INTO archive_fts (rowid, words) SELECT archived_id, words FROM"
            " archive_search WHERE archived_id BETWEEN :first AND :last"
        ),
        {"first": words[0]["archived_id"], "last": words[-1]["archived_id"]},
    )
    session.execute(text(trigger))


FTS_TRIGGER = "archive_fts_insert"  # migration 0007_archive


def not_archived(session: Session, list_id: int, entries: list[ArchiveEntry]) -> list[ArchiveEntry]:
    """The entries whose Message-ID the list has not archived (the first of one given twice)."""
    by_id: dict[str, ArchiveEntry] = {}
    for entry in entries:
        by_id.setdefault(entry.message_id, entry)
    m = ArchivedMessage
    archived = session.scalars(
        select(m.message_id).where(m.list_id == list_id, m.message_id.in_(list(by_id)))
    )
    for message_id in archived:
        del by_id[message_id]
    return list(by_id.values())


def new_ids(session: Session, count: int) -> list[int]:
    """Ids for *count* new posts, in order: PostgreSQL's sequence gives them; on SQLite the
    transaction holds the write lock, and the ids follow the last one as inserts would."""
    if session.get_bind().dialect.name == "postgresql":
        found = session.scalars(
            select(
                func.nextval(func.pg_get_serial_sequence("archived_messages", "id"))
            ).select_from(func.generate_series(1, count))
        )
        return sorted(found)
    last = session.scalar(select(func.max(ArchivedMessage.id))) or 0
    return list(range(last + 1, last + 1 + count))


def copy_rows(session: Session, rows: list[dict[str, Any]], words: list[dict[str, Any]]) -> None:
    """PostgreSQL: the rows and their words by binary COPY (the posts' bytes sent as they
    are). The batch's commit does not wait for the disk: a crash can lose the last batches
    whole, which running the import again writes, and the import's last, synchronous
    commit makes them all durable."""
    with session.connection().connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        # The posts' bytes compressed by lz4 where the server has it: a tenth of the
        # server's work per post less than its default (pglz), and faster to read back.
        cursor.execute(
            "SELECT set_config('default_toast_compression', 'lz4', true) FROM pg_settings"
            " WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
        )
        for model, written in ((ArchivedMessage, rows), (ArchiveSearchText, words)):
            names = list(written[0])
            table = model.__table__
            columns = ", ".join(f'"{name}"' for name in names)
            with cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([binary_type(table.c[name]) for name in names])
                for values in written:
                    copy.write_row([values[name] for name in names])


# The binary COPY format of a column, by the Python type it holds (text and varchar are
# written alike).
PG_TYPES = {int: "int4", str: "text", bytes: "bytea", datetime: "timestamptz"}


def binary_type(column: Column[Any]) -> str:
    kind = column.type.impl if isinstance(column.type, TypeDecorator) else column.type
    return PG_TYPES[kind.python_type]
