"""Write a new Alembic migration from the difference between the models and the schema.

Usage: python scripts/new_migration.py "what changed" REVISION_ID
"""

import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

from listserv.db import MIGRATIONS, make_engine, upgrade

with tempfile.TemporaryDirectory() as scratch:
    url = f"sqlite:///{Path(scratch) / 'schema.db'}"
    upgrade(make_engine(url))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with create_engine(url).begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=sys.argv[1], autogenerate=True, rev_id=sys.argv[2])
