"""archive awaited: the parents archived posts name that their list's archive lacks

Revision ID: 0013_archive_awaited
Revises: 0012_archive_months
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_archive_awaited"
down_revision = "0012_archive_months"
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade() -> None:
    op.create_table(
        "archive_awaited",
        sa.Column("archived_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=500), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["archived_id"], ["archived_messages.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("archived_id", "message_id"),
    )
    op.create_index("ix_archive_awaited_message", "archive_awaited", ["list_id", "message_id"])
    connection = op.get_bind()
    list_ids = connection.execute(sa.text("SELECT DISTINCT list_id FROM archived_messages"))
    for (list_id,) in list_ids.all():
        record_awaited(connection, list_id)


def record_awaited(connection: sa.Connection, list_id: int) -> None:
    """Every Message-ID the list's posts name (In-Reply-To, References) that it lacks."""
    by_list = {"list_id": list_id}
    archived = set(
        connection.scalars(
            sa.text("SELECT message_id FROM archived_messages WHERE list_id = :list_id"), by_list
        )
    )
    posts = connection.execute(
        sa.text(
            'SELECT id, message_id, in_reply_to, "references" FROM archived_messages '
            "WHERE list_id = :list_id"
        ),
        by_list,
    )
    rows = []
    for archived_id, message_id, in_reply_to, references in posts.all():
        named = {in_reply_to, *(references or "").split()} - {"", message_id}
        rows += [
            {"archived_id": archived_id, "message_id": m, "list_id": list_id}
            for m in named - archived
        ]
    insert = sa.text(
        "INSERT INTO archive_awaited (archived_id, message_id, list_id) "
        "VALUES (:archived_id, :message_id, :list_id)"
    )
    for start in range(0, len(rows), BATCH):
        connection.execute(insert, rows[start : start + BATCH])


def downgrade() -> None:
    op.drop_index("ix_archive_awaited_message", table_name="archive_awaited")
    op.drop_table("archive_awaited")
