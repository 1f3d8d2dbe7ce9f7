"""instance beats: processes judge each other alive by a beat count, not by comparing clocks

Revision ID: 0011_instance_beats
Revises: 0010_received_bodies
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_instance_beats"
down_revision = "0010_received_bodies"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("beats", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("beats")
