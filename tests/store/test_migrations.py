"""The migration history builds exactly the schema the models describe, on both databases."""

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from listserv.store.db import make_engine, upgrade
from listserv.store.models import Base, described_by_models


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
