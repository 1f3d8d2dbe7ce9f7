"""The migration history builds exactly the schema the models describe, on both databases."""

import os
import subprocess
import sys
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from listserv.archive.search import Filters, search
from listserv.archive.store import archive_post
from listserv.archive.words import index_text
from listserv.mail.codec import to_bytes
from listserv.store.db import MIGRATIONS, make_engine, session_factory, transaction, upgrade
from listserv.store.models import ArchivedMessage, Base, described_by_models


def test_migrations_build_the_schema_of_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    upgrade(engine)  # a second upgrade is a no-op, as at every start of serve
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": described_by_models}
        )
        assert compare_metadata(context, Base.metadata) == []
        assert set(Base.metadata.tables) <= set(inspect(connection).get_table_names())
    engine.dispose()


def test_new_migration_script_uses_the_models_of_its_own_repository(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    script = root / "scripts" / "new_migration.py"
    code = (
        f"import runpy; runpy.run_path({str(script)!r}); import listserv; print(listserv.__file__)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).parent == root / "listserv"


def test_an_archive_made_before_its_months_were_counted_shows_them_after_the_upgrade(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    with engine.begin() as connection:
        upgraded_with_a_list(connection, "0011_instance_beats")
        for number, date in enumerate(["2025-01-31 23:30:00", "2025-01-02", "2025-02-01"]):
            connection.execute(
                text(
                    "INSERT INTO archived_messages (list_id, message_id, thread_id, in_reply_to,"
                    ' "references", subject_key, date, archived_at, sender_name,'
                    " sender_obfuscated, sender_address, subject, size, removed_reason)"
                    " VALUES (1, :id, 0, '', '', '', :date, :date, '', '', '', '', 0, '')"
                ),
                {"id": f"{number}@x", "date": datetime.fromisoformat(date).replace(tzinfo=UTC)},
            )
    upgrade(engine)
    with engine.connect() as connection:
        assert month_counts_of(connection) == [("2025-01", 2), ("2025-02", 1)]
    engine.dispose()


def upgraded_with_a_list(connection, revision: str) -> AlembicConfig:
    """The schema at *revision*, with list 1; the Alembic config, to go on with."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
    connection.execute(
        text("INSERT INTO lists (id, name, settings, created_at) VALUES (1, 'l', '{}', :now)"),
        {"now": datetime.now(UTC)},
    )
    return config


def month_counts_of(connection) -> list[tuple[str, int]]:
    rows = connection.execute(text("SELECT month, posts FROM archive_months ORDER BY month"))
    return [tuple(row) for row in rows]


def test_a_post_archived_before_the_upgrade_is_adopted_by_the_parent_it_awaited(
    database_url: str,
) -> None:
    """Posts naming a parent the archive lacks are noted at the upgrade, so the parent
    archived afterwards takes them into its thread."""
    engine = make_engine(database_url)
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    now = datetime.now(UTC)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0012_archive_months")
        connection.execute(
            text("INSERT INTO lists (id, name, settings, created_at) VALUES (1, 'l', '{}', :now)"),
            {"now": now},
        )
        for message_id, in_reply_to, references in [
            ("root@x", "", ""),
            ("child@x", "parent@x", "root@x parent@x"),
        ]:
            connection.execute(
                text(
                    "INSERT INTO archived_messages (list_id, message_id, thread_id, in_reply_to,"
                    ' "references", subject_key, date, archived_at, sender_name,'
                    " sender_obfuscated, sender_address, subject, size, removed_reason)"
                    " VALUES (1, :id, 0, :irt, :refs, '', :now, :now, '', '', '', '', 0, '')"
                ),
                {"id": message_id, "irt": in_reply_to, "refs": references, "now": now},
            )
        root = "(SELECT id FROM archived_messages WHERE message_id = 'root@x')"
        connection.execute(text(f"UPDATE archived_messages SET thread_id = {root}"))
        connection.execute(
            text(f"UPDATE archived_messages SET parent_id = {root} WHERE message_id = 'child@x'")
        )
        root_id, child_id = (
            connection.scalar(text(f"SELECT id FROM archived_messages WHERE message_id = '{m}'"))
            for m in ("root@x", "child@x")
        )
    upgrade(engine)
    parent = EmailMessage()
    parent["From"] = "a@example.org"
    parent["Subject"] = "Re: Water"
    parent["Message-ID"] = "<parent@x>"
    parent["References"] = "<root@x>"
    parent.set_content("text\n")
    with transaction(session_factory(engine)) as session:
        archived_id = archive_post(session, 1, to_bytes(parent))
        row = session.get(ArchivedMessage, archived_id)
        assert row is not None and (row.parent_id, row.thread_id) == (root_id, root_id)
        child = session.get(ArchivedMessage, child_id)
        assert child is not None and child.parent_id == row.id
    engine.dispose()


def test_an_archive_indexed_before_0015_is_searched_after_the_upgrade(database_url: str) -> None:
    """PostgreSQL's search vector is made again from the stored words (and back again on a
    downgrade); SQLite's index is left as it was."""
    engine = make_engine(database_url)
    with engine.begin() as connection:
        config = upgraded_with_a_list(connection, "0014_archive_month_index")
        connection.execute(
            text(
                "INSERT INTO archived_messages (id, list_id, message_id, thread_id, in_reply_to,"
                ' "references", subject_key, date, archived_at, sender_name,'
                " sender_obfuscated, sender_address, subject, size, removed_reason)"
                " VALUES (7, 1, 'a@x', 7, '', '', '', :now, :now, '', '', '', '', 0, '')"
            ),
            {"now": datetime.now(UTC)},
        )
        connection.execute(
            text("INSERT INTO archive_search VALUES (7, 1, :words)"),
            {"words": index_text("Ледники тают")},
        )
    upgrade(engine)
    sessions = session_factory(engine)
    with sessions() as session:
        assert [r.id for r in search(session, "ледниками", Filters([1]))] == [7]
        assert search(session, "ледниками засуха", Filters([1])) == []
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0014_archive_month_index")
        command.upgrade(config, "head")
    with sessions() as session:
        assert [r.id for r in search(session, "тают", Filters([1]))] == [7]
    engine.dispose()
