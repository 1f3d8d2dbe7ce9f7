"""Fixtures: every server test runs against real SQLite and real PostgreSQL.

PostgreSQL is the one on 127.0.0.1:5432 (``LISTSERV_TEST_PG`` overrides the URL); each test
gets a schema of its own, dropped afterwards, so tests never see each other's rows. When
``CI`` is set an unreachable PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dnsstub import DnsStub
from mailauth import SELECTOR, publish_key, write_key
from support import RunningServer, Sink, list_table, write_config

# Hypothesis loads every installed package's "hypothesis" entry point; trio (which selenium
# brings) names one its current release no longer has, and the run would crash at its end.
os.environ.setdefault("HYPOTHESIS_NO_PLUGINS", "1")
PG_URL = os.environ.get("LISTSERV_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_connect() -> psycopg.Connection:
    return psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True, connect_timeout=5)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'listserv.db'}"
        return
    try:
        connection = pg_connect()
    except psycopg.OperationalError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL unavailable: {error}")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with connection:
        connection.execute(f"CREATE SCHEMA {schema}")
        try:
            yield f"{PG_URL}?options=-csearch_path%3D{schema}"
        finally:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def sink() -> Iterator[Sink]:
    sink = Sink().start()
    yield sink
    sink.stop()


@pytest.fixture
def dns_stub() -> Iterator[DnsStub]:
    """The DNS server every test config points at: set ``dns_stub.records[name]``."""
    stub = DnsStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def config_file(
    tmp_path: Path, database_url: str, sink: Sink, dns_stub: DnsStub
) -> Callable[..., Path]:
    """Write a config: ``config_file(lists=[…], server={…}, delivery={…})``."""

    def write(lists: list[dict[str, Any]] | None = None, **sections: dict[str, Any]) -> Path:
        # No lookup may leave the machine: every test resolves through the stub.
        sections["dns"] = {"nameservers": [dns_stub.address], "timeout": 0.5} | sections.get(
            "dns", {}
        )
        return write_config(
            tmp_path,
            database_url,
            sink,
            lists if lists is not None else [list_table("test")],
            **sections,
        )

    return write


@pytest.fixture
def start_server(config_file: Callable[..., Path]) -> Iterator[Callable[..., RunningServer]]:
    """Start listserv on a fresh config: ``start_server(lists=[…], delivery={…})``."""
    servers: list[RunningServer] = []

    def start(**kwargs: Any) -> RunningServer:
        server = RunningServer(config_file(**kwargs)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def dkim_section(tmp_path: Path, dns_stub: DnsStub) -> dict[str, Any]:
    """A ``[dkim]`` section with a key on disk whose public half the stub DNS publishes:
    ``start_server(dkim=dkim_section)``."""
    path = write_key(tmp_path)
    publish_key(dns_stub, SELECTOR, "lists.example.org", "list")
    return {"selector": SELECTOR, "private_key": str(path)}
