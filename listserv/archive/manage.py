"""What ``listserv archive …`` does: import an mbox, rebuild threads and the search index.
Removing and erasing live in archive/store.py, exporting in archive/mbox.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from listserv.archive.mbox import opened_mbox, unquote_from
from listserv.archive.store import archive_post, index_post
from listserv.archive.threading import Headers, thread_all
from listserv.mail.codec import parse
from listserv.store.db import transaction
from listserv.store.lists import MailList
from listserv.store.models import ArchivedMessage

BATCH = 500


def import_mbox(
    sessions: sessionmaker[Session],
    mlist: MailList,
    path: Path,
    progress: Callable[[int], None] = lambda _n: None,
) -> tuple[int, int]:
    """Archive every message of the mbox not archived yet (by Message-ID), in batches of
    one transaction each, then rebuild the list's threads; (imported, already there).
    *progress* is told how many messages each batch read."""
    imported = skipped = 0
    with opened_mbox(path) as box:
        keys = box.keys()
        for start in range(0, len(keys), BATCH):
            batch = keys[start : start + BATCH]
            with transaction(sessions) as session:
                for key in batch:
                    raw = unquote_from(box.get_bytes(key))
                    prefix = mlist.config.subject_prefix or ""
                    row = archive_post(session, mlist.id, raw, subject_prefix=prefix, thread=False)
                    imported += row is not None
                    skipped += row is None
            progress(len(batch))
    with transaction(sessions) as session:
        rebuild_threads(session, mlist.id)
    return imported, skipped


def rows_of(session: Session, list_id: int) -> Iterator[ArchivedMessage]:
    query = select(ArchivedMessage).where(ArchivedMessage.list_id == list_id)
    return iter(
        session.scalars(query.order_by(ArchivedMessage.id).execution_options(yield_per=BATCH))
    )


def rebuild_threads(session: Session, list_id: int) -> None:
    """Thread the whole list from scratch (pure threading over every post's headers, read
    without the posts' bytes)."""
    m = ArchivedMessage
    rows = session.execute(
        select(m.id, m.message_id, m.in_reply_to, m.references, m.subject_key, m.date).where(
            m.list_id == list_id
        )
    ).all()
    ids = {r.message_id: r.id for r in rows}
    headers = (
        Headers(r.message_id, r.in_reply_to, tuple(r.references.split()), r.subject_key, r.date)
        for r in rows
    )
    changes = [
        {
            "id": ids[message_id],
            "parent_id": ids[parent] if parent else None,
            "thread_id": ids[root],
        }
        for message_id, (parent, root) in thread_all(headers).items()
    ]
    if changes:
        session.execute(update(ArchivedMessage), changes)
    session.expire_all()


def reindex(session: Session, list_id: int) -> int:
    """Threads and search words of a list made again from the stored posts; how many."""
    rebuild_threads(session, list_id)
    count = 0
    for row in rows_of(session, list_id):
        if row.raw is not None:
            index_post(session, row, parse(row.raw))
            count += 1
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("INSERT INTO archive_fts(archive_fts) VALUES ('rebuild')"))
    return count
