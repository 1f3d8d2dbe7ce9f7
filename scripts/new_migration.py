"""Write a new Alembic migration from the difference between the models and the schema.

Usage: python scripts/new_migration.py "what changed" REVISION_ID
"""

import sys
import tempfile
from pathlib import Path

# The models of the repository this script is in, not those of an installed listserv.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

from listserv.store.db import MIGRATIONS, make_engine, upgrade


def main(message: str, revision: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'schema.db'}"
        upgrade(make_engine(url))
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with create_engine(url).begin() as connection:
            config.attributes["connection"] = connection
            command.revision(config, message=message, autogenerate=True, rev_id=revision)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
