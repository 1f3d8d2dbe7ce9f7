"""Engines, sessions and schema migrations, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event, func, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from listserv.store.models import utcnow

MIGRATIONS = Path(__file__).parent / "migrations"


class DatabaseError(Exception):
    """The database cannot be reached or used; the message is one line for the operator."""


def make_engine(
    url: str, timeout: float = 30.0, defer_to: Callable[[], bool] | None = None
) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                private_files(Path(path))
            except OSError as error:
                raise DatabaseError(f"database unavailable: {path}: {error.strerror}") from None
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": timeout}, pool_size=8
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        WriterQueue(timeout, defer_to).attach(engine)
        return engine
    return create_engine(
        url,
        connect_args={"connect_timeout": max(1, round(timeout))},
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
    )


def private_files(path: Path) -> None:
    """The SQLite database holds live tokens and everyone's mail: readable by its owner only.
    SQLite gives its -wal and -shm files the database file's mode, so the file is created
    0600 before SQLite opens it; files left looser by an older version are tightened."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists() and name.stat().st_mode & 0o077:
            name.chmod(0o600)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class WriterQueue:
    """The threads of one process take turns at SQLite's write lock in the order they ask.

    SQLite lets one writer at a time in; one that finds the lock taken sleeps and tries again
    with growing sleeps (up to 100 ms), so with intake, the router and delivery all writing,
    most of the time went by in those sleeps. A transaction's first write waits for the
    previous writer of this process instead; processes still share SQLite's own lock.

    In a worker process, *defer_to* says when the serve process's intake waits to write: a
    first write then waits for it, up to ``STEP_ASIDE`` seconds, so that sessions get their
    250 at once rather than after rounds of SQLite's sleeps."""

    WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN IMMEDIATE")
    STEP_ASIDE = 0.05

    def __init__(self, timeout: float, defer_to: Callable[[], bool] | None = None) -> None:
        self.lock = threading.Lock()
        self.timeout = timeout
        self.defer_to = defer_to

    def attach(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self.before_execute)
        for name in ("commit", "rollback"):
            event.listen(engine, name, self.release)
        # A connection handed back without its transaction ended (an error, a reset).
        event.listen(engine.pool, "reset", self.reset)

    def before_execute(self, connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "writer" in connection.info or not statement.lstrip().upper().startswith(self.WRITES):
            return
        # Past the timeout SQLite's own lock decides, as without this queue (a thread that
        # writes in a second transaction before ending its first must not wait forever).
        connection.info["writer"] = self.lock.acquire(timeout=self.timeout)
        if self.defer_to is not None:
            deadline = time.monotonic() + self.STEP_ASIDE
            while self.defer_to() and time.monotonic() < deadline:
                time.sleep(0.001)

    def reset(self, _dbapi_connection: Any, connection_record: Any, _reset_state: Any) -> None:
        self.release(connection_record)

    def release(self, holder: Any) -> None:
        if holder.info.pop("writer", False):
            self.lock.release()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any error."""
    with sessions() as session, session.begin():
        yield session


def take_write_lock(session: Session) -> None:
    """Before reading rows this transaction will decide on (a token, a held post): on SQLite
    take the database's write lock now. ``FOR UPDATE`` does nothing there, and pysqlite only
    begins a transaction at the first write, so two processes could both read a token unused
    and both act on it. On PostgreSQL the callers lock the rows themselves (``FOR UPDATE``)."""
    if session.get_bind().dialect.name != "sqlite":
        return
    connection = session.connection().connection.dbapi_connection
    if connection is not None and not connection.in_transaction:  # type: ignore[attr-defined]
        session.execute(text("BEGIN IMMEDIATE"))


def database_now(session: Session) -> datetime:
    """The database server's clock on PostgreSQL (processes on several hosts compare their
    heartbeats by it); SQLite is a file on this host, whose clock it is."""
    if session.get_bind().dialect.name == "postgresql":
        return session.scalar(select(func.clock_timestamp()))  # type: ignore[return-value]
    return utcnow()


# The PostgreSQL advisory lock held while a process starts (any number unlikely to clash).
STARTUP_LOCK = 0x6C697374  # "list"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to the newest migration, or to *revision* (under ``startup_lock``
    when several processes may start at once)."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with (
            engine.connect() as connection,
            foreign_key_actions_off(connection),
            connection.begin(),
        ):
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            _check_foreign_keys(connection)
    except OperationalError as error:
        raise DatabaseError(describe(error)) from None


@contextmanager
def foreign_key_actions_off(connection: Connection) -> Iterator[None]:
    """On SQLite, foreign keys are off while the schema changes. SQLite changes a table by
    copying it to a new one and dropping the old, and with foreign keys on that drop would
    delete (ON DELETE CASCADE) or empty (SET NULL) the rows of other tables referring to it.
    SQLite's own procedure for altering a table; the pragma only works outside a
    transaction."""
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        yield
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


def _check_foreign_keys(connection: Connection) -> None:
    """What was changed with foreign keys off still satisfies them (SQLite)."""
    if connection.dialect.name == "sqlite":
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").first()
        if broken is not None:
            raise DatabaseError(f"migration broke a foreign key: {tuple(broken)}")


@contextmanager
def startup_lock(engine: Engine) -> Iterator[None]:
    """Processes starting together take turns at migrating the schema and declaring the
    configured lists: the first does it, the others then find everything up to date. A
    PostgreSQL advisory lock; on SQLite, whose DDL is not transactional, a lock file beside
    the database."""
    if engine.dialect.name == "postgresql":
        try:
            with engine.connect() as connection:
                connection.execute(select(func.pg_advisory_lock(STARTUP_LOCK)))
                try:
                    yield
                finally:
                    connection.execute(select(func.pg_advisory_unlock(STARTUP_LOCK)))
        except OperationalError as error:
            raise DatabaseError(describe(error)) from None
        return
    path = engine.url.database
    if not path or path == ":memory:":
        yield
        return
    with open(f"{path}.startup-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def describe(error: Exception) -> str:
    """One line saying why the database failed."""
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return f"database unavailable: {text[0] if text else type(error).__name__}"


def error_line(error: BaseException) -> str:
    """The kind and first line of an error (a database error's own), for a log or a record."""
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
