"""archive months: posts a list archived per month, counted as they are archived

Revision ID: 0012_archive_months
Revises: 0011_instance_beats
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_archive_months"
down_revision = "0011_instance_beats"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "archive_months",
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("posts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("list_id", "month"),
    )
    if op.get_bind().dialect.name == "sqlite":
        month = "strftime('%Y-%m', date)"
    else:
        month = "to_char(timezone('UTC', date), 'YYYY-MM')"
    op.execute(
        f"INSERT INTO archive_months (list_id, month, posts) "
        f"SELECT list_id, {month}, count(*) FROM archived_messages GROUP BY list_id, {month}"
    )


def downgrade() -> None:
    op.drop_table("archive_months")
