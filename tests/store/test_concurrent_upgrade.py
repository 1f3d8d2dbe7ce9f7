"""Several processes starting at once on a new database: one migrates and declares the
lists, the others wait for it and find everything up to date. Real ``listserv db upgrade``
subprocesses, both databases."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import inspect, text

from listserv.store.db import make_engine

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 4


def test_processes_starting_together_migrate_once(
    config_file: Callable[..., Path], database_url: str
) -> None:
    path = config_file()
    command = [sys.executable, "-m", "listserv", "--config", str(path), "db", "upgrade"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = [
        subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(PROCESSES)
    ]
    outcomes = [(p.wait(120), p.stderr.read() if p.stderr else "") for p in started]
    assert [code for code, _ in outcomes] == [0] * PROCESSES, outcomes
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
            assert len(versions) == 1
            assert "deliveries" in inspect(connection).get_table_names()
    finally:
        engine.dispose()
