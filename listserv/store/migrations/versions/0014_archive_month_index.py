"""archive month index: a month's posts and threads counted and grouped from the index

The index on (list, date) gains the thread: a month's page counts its posts and threads and
groups a page of threads without visiting a thousand rows.

Revision ID: 0014_archive_month_index
Revises: 0013_archive_awaited
"""

from alembic import op

revision = "0014_archive_month_index"
down_revision = "0013_archive_awaited"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_archived_messages_list_date_thread",
        "archived_messages",
        ["list_id", "date", "thread_id"],
    )
    op.drop_index("ix_archived_messages_list_date", table_name="archived_messages")


def downgrade() -> None:
    op.create_index("ix_archived_messages_list_date", "archived_messages", ["list_id", "date"])
    op.drop_index("ix_archived_messages_list_date_thread", table_name="archived_messages")
