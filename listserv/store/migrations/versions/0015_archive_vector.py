"""archive vector: PostgreSQL's search vector read from the stored words as they are

``archive_search.words`` holds words listserv stemmed already (archive/words.py), separated by
spaces: ``words::tsvector`` takes them as they are, where ``to_tsvector('simple', words)`` ran
PostgreSQL's parser over them again (half of the server's work per imported post). Searches
look the same words up (archive/search.py). SQLite's FTS5 index is unchanged.

Revision ID: 0015_archive_vector
Revises: 0014_archive_month_index
"""

from alembic import op

revision = "0015_archive_vector"
down_revision = "0014_archive_month_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        vector("words::tsvector")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        vector("to_tsvector('simple'::regconfig, words)")


def vector(expression: str) -> None:
    """The generated column made again (PostgreSQL 15 cannot change its expression), with
    its GIN index."""
    op.execute("ALTER TABLE archive_search DROP COLUMN words_vector")  # and its index
    op.execute(
        "ALTER TABLE archive_search ADD COLUMN words_vector tsvector GENERATED ALWAYS AS "
        f"({expression}) STORED"
    )
    op.execute("CREATE INDEX ix_archive_search_words ON archive_search USING gin (words_vector)")
