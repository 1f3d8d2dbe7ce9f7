"""What ``listserv archive …`` does: import an mbox, rebuild threads and the search index.
Removing and erasing live in archive/store.py, exporting in archive/mbox.py."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from functools import partial
from itertools import islice
from pathlib import Path

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from listserv.archive.mbox import mbox_messages, unquote_from
from listserv.archive.render import read_post
from listserv.archive.store import ArchiveEntry, archive_entry, post_words
from listserv.archive.threading import missing_parents, thread_all
from listserv.archive.writing import ListThreads, add_entries, row_headers, thread_rows
from listserv.store.db import transaction
from listserv.store.lists import MailList
from listserv.store.models import ArchiveAwaited, ArchivedMessage, ArchiveSearchText, utcnow

BATCH = 500  # posts read by one worker task and written in one transaction
IN_FLIGHT = 4  # batches read ahead of the database: enough to keep the workers busy


def import_mbox(
    sessions: sessionmaker[Session],
    mlist: MailList,
    path: Path,
    progress: Callable[[int], None] = lambda _n: None,
    batch_size: int = BATCH,
) -> tuple[int, int]:
    """Archive every message of the mbox not archived yet (by Message-ID, the first of a
    Message-ID the file holds twice), then rebuild the list's threads; (imported, already
    there). Worker processes read the posts, this one writes them, a transaction a batch
    (each post threaded among those before it: an import cut short leaves threads as they
    were then, which running it again completes). *progress* is told how many messages
    each batch read."""
    imported = skipped = 0
    with sessions() as session:
        threads = ListThreads(thread_rows(session, mlist.id))
    batches = batched(mbox_messages(path), batch_size)
    read = partial(archive_entries, mlist.config.subject_prefix or "")
    for entries in read_all(read, batches):
        with transaction(sessions) as session:
            added = add_entries(session, mlist.id, entries, threads)
        if added and not imported:
            # Planned without statistics (a new archive), the look-up of the batch's
            # Message-IDs reads every post of the list: the import slows down as it goes.
            analyze(sessions, "archived_messages")
        imported += added
        skipped += len(entries) - added
        progress(len(entries))
    del threads  # the rebuild reads every post again: not twice in memory
    with transaction(sessions) as session:
        rebuild_threads(session, mlist.id)
    if imported:
        # Planned with the statistics of a smaller archive, a thread page or a search reads
        # every post of the list (autovacuum would catch up, in its own time).
        analyze(sessions, "archived_messages, archive_search")
    return imported, skipped


def analyze(sessions: sessionmaker[Session], tables: str) -> None:
    """PostgreSQL's statistics of *tables* made again (SQLite's planner needs none here)."""
    with transaction(sessions) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text(f"ANALYZE {tables}"))


def batched(items: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    while batch := list(islice(items, size)):
        yield batch


def archive_entries(subject_prefix: str, batch: list[bytes]) -> list[ArchiveEntry]:
    """The entries of a batch of messages as the mbox holds them (in a worker process)."""
    now = utcnow()
    return [archive_entry(unquote_from(raw), subject_prefix, now) for raw in batch]


def read_all(
    read: Callable[[list[bytes]], list[ArchiveEntry]], batches: Iterator[list[bytes]]
) -> Iterator[list[ArchiveEntry]]:
    """The entries of every batch, in order: in worker processes over every core when there
    is more than one batch (a small file is read here: starting workers costs more)."""
    workers = max(2, os.cpu_count() or 1)
    first = list(islice(batches, workers))
    if len(first) < 2:
        yield from map(read, first)
        return
    # forkserver: forking this process could copy a lock some thread of it holds.
    context = multiprocessing.get_context("forkserver")
    # The fork server imports the readers' modules once, not each worker again (the fork
    # server of a process that had one running already keeps what it has).
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        with main_not_run_again():  # a worker starts at each of the first submissions
            pending: deque[Future[list[ArchiveEntry]]] = deque(
                map(partial(pool.submit, read), first)
            )
        for batch in batches:
            pending.append(pool.submit(read, batch))
            if len(pending) >= IN_FLIGHT:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


@contextmanager
def main_not_run_again() -> Iterator[None]:
    """multiprocessing starts a worker by running this process's main script again in it
    (for what the script defines; Python 3.11's fork server never preloads it), which for
    ``listserv`` imports the whole server, half a second of each worker's CPU. The readers
    need none of it: while workers start, the script looks like an interactive session's,
    which is not run again."""
    main = sys.modules["__main__"]
    saved = {name: main.__dict__[name] for name in ("__file__", "__spec__") if name in vars(main)}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.update(saved)
        if "__spec__" not in saved:
            del main.__spec__


def rows_of(session: Session, list_id: int) -> Iterator[ArchivedMessage]:
    query = select(ArchivedMessage).where(ArchivedMessage.list_id == list_id)
    return iter(
        session.scalars(query.order_by(ArchivedMessage.id).execution_options(yield_per=BATCH))
    )


def rebuild_threads(session: Session, list_id: int) -> None:
    """Thread the whole list from scratch (pure threading over every post's headers, read
    without the posts' bytes); only the posts whose place changed are written."""
    rows = thread_rows(session, list_id)
    by_message_id = {r.message_id: r for r in rows}
    headers = [row_headers(r) for r in rows]
    session.execute(delete(ArchiveAwaited).where(ArchiveAwaited.list_id == list_id))
    awaited = [
        {"archived_id": by_message_id[h.message_id].id, "message_id": m, "list_id": list_id}
        for h in headers
        for m in missing_parents(h, by_message_id)
    ]
    if awaited:
        session.execute(insert(ArchiveAwaited), awaited)
    changes = []
    for message_id, (parent, root) in thread_all(headers).items():
        row = by_message_id[message_id]
        parent_id = by_message_id[parent].id if parent else None
        thread_id = by_message_id[root].id
        if (row.parent_id, row.thread_id) != (parent_id, thread_id):
            changes.append({"id": row.id, "parent_id": parent_id, "thread_id": thread_id})
    if changes:
        session.execute(update(ArchivedMessage), changes)
    session.expire_all()


def reindex(session: Session, list_id: int) -> int:
    """Threads and search words of a list made again from the stored posts; how many."""
    rebuild_threads(session, list_id)
    count = 0
    for row in rows_of(session, list_id):
        if row.raw is not None:
            words = post_words(row.subject, row.sender_name, read_post(row.raw))
            session.merge(ArchiveSearchText(archived_id=row.id, list_id=list_id, words=words))
            count += 1
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("INSERT INTO archive_fts(archive_fts) VALUES ('rebuild')"))
    return count
