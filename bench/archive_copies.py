"""Grows a benchmark archive made by ``bench/archive.py`` to POSTS posts in SQL, without
importing them: the first BASE imported posts (rows and search words) are copied again and
again with their ids, Message-IDs, replies and threads shifted, and dates moved on by BASE
posts each time, so the result looks like an import of POSTS posts whose texts repeat every
BASE. For the page latencies of a big archive when importing it would take too long; the
import rate is measured by ``bench/archive.py`` itself.

Usage: python bench/archive_copies.py DATABASE_URL BASE POSTS
       then: python bench/archive.py POSTS DATABASE_URL --pages-only
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from listserv.archive.manage import rebuild_threads
from listserv.store.db import make_engine, session_factory, transaction, upgrade

MINUTES_A_POST = 37  # bench/archive.py's STEP
COLUMNS = (
    "list_id, references, subject_key, archived_at, sender_name, sender_obfuscated, "
    "sender_address, subject, size, raw, removed_at, removed_reason"
)


def copy_statement(dialect: str, shift: int) -> str:
    minutes = shift * MINUTES_A_POST
    if dialect == "sqlite":
        date = f"strftime('%Y-%m-%d %H:%M:%S', date, '+{minutes} minutes') || '.000000'"
    else:
        date = f"date + interval '{minutes} minutes'"
    columns = COLUMNS.replace("references", '"references"')
    return (
        f"INSERT INTO archived_messages (id, message_id, in_reply_to, date, thread_id, "
        f"parent_id, {columns}) SELECT id + {shift}, "
        f"CAST(id - 1 + {shift} AS TEXT) || '@bench.example', "
        f"CASE WHEN in_reply_to = '' THEN '' "
        f"ELSE CAST(id - 2 + {shift} AS TEXT) || '@bench.example' END, "
        f"{date}, thread_id + {shift}, parent_id + {shift}, {columns} "
        "FROM archived_messages WHERE id <= :base"
    )


def main() -> None:
    url, base, posts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    engine = make_engine(url)
    upgrade(engine)
    sessions = session_factory(engine)
    dialect = engine.dialect.name
    with transaction(sessions) as session:
        session.execute(
            text("DELETE FROM archive_search WHERE archived_id > :base"), {"base": base}
        )
        session.execute(text("DELETE FROM archived_messages WHERE id > :base"), {"base": base})
        rebuild_threads(session, 1)
    for shift in range(base, posts, base):
        start = time.perf_counter()
        with transaction(sessions) as session:
            session.execute(text(copy_statement(dialect, shift)), {"base": base})
            session.execute(
                text(
                    "INSERT INTO archive_search (archived_id, list_id, words) "
                    f"SELECT archived_id + {shift}, list_id, words FROM archive_search "
                    "WHERE archived_id <= :base"
                ),
                {"base": base},
            )
        print(f"posts {shift + 1}–{shift + base}: {time.perf_counter() - start:.0f} s", flush=True)
    month = "strftime('%Y-%m', date)" if dialect == "sqlite" else "to_char(date, 'YYYY-MM')"
    with transaction(sessions) as session:  # the index's counts, as migration 0012 makes them
        session.execute(text("DELETE FROM archive_months"))
        session.execute(
            text(
                f"INSERT INTO archive_months SELECT list_id, {month}, count(*) "
                f"FROM archived_messages GROUP BY list_id, {month}"
            )
        )
    if dialect == "postgresql":
        with engine.begin() as connection:
            connection.execute(
                text(
                    "SELECT setval('archived_messages_id_seq', "
                    "(SELECT max(id) FROM archived_messages))"
                )
            )
            connection.execute(text("ANALYZE"))
    engine.dispose()


if __name__ == "__main__":
    main()
