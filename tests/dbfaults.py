"""Faults of a real database for tests: a trigger that makes SQLite or PostgreSQL refuse a
write (``RAISE(ABORT)`` / ``RAISE EXCEPTION``), as a full disk, a constraint or a broken
replica would, without mocking any of our code."""

from __future__ import annotations

from sqlalchemy import text

from listserv.app import App


def refuse(app: App, name: str, table: str, event: str, when: str, reason: str) -> None:
    """Make the database refuse *event* (``UPDATE``, ``INSERT``) on *table* when the SQL
    condition *when* holds for the row (``NEW.status = 'sent'``), with *reason*."""
    with app.engine.begin() as connection:
        if app.engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    f"CREATE TRIGGER {name} BEFORE {event} ON {table} WHEN {when} "
                    f"BEGIN SELECT RAISE(ABORT, '{reason}'); END"
                )
            )
            return
        connection.execute(
            text(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN RAISE EXCEPTION '{reason}'; END $$"
            )
        )
        connection.execute(
            text(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW "
                f"WHEN ({when}) EXECUTE FUNCTION {name}()"
            )
        )


def allow(app: App, name: str, table: str) -> None:
    """Remove the trigger *name* of ``refuse``."""
    with app.engine.begin() as connection:
        sqlite = app.engine.dialect.name == "sqlite"
        connection.execute(text(f"DROP TRIGGER {name}" + ("" if sqlite else f" ON {table}")))
