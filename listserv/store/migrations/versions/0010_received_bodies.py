"""received bodies: a message's bytes stored once per SMTP transaction, not once per recipient

Revision ID: 0010_received_bodies
Revises: 0009_portal
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_received_bodies"
down_revision = "0009_portal"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "received_bodies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body_id", sa.Integer(), nullable=True))
    # Each message received so far gets a body of its own, under its own id; the database
    # copies the bytes, none pass through this process.
    op.execute(
        "INSERT INTO received_bodies (id, raw, size) SELECT id, raw, length(raw) FROM messages"
    )
    op.execute("UPDATE messages SET body_id = id")
    if op.get_bind().dialect.name == "postgresql":
        # The ids were given, not drawn: the next body's id comes after them.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('received_bodies', 'id'), "
            "coalesce(max(id), 0) + 1, false) FROM received_bodies"
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.alter_column("body_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_index("ix_messages_body", ["body_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_messages_body_id_received_bodies", "received_bodies", ["body_id"], ["id"]
        )
        batch_op.drop_column("raw")


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("raw", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE messages SET raw = "
        "(SELECT raw FROM received_bodies WHERE received_bodies.id = messages.body_id)"
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.alter_column("raw", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_constraint("fk_messages_body_id_received_bodies", type_="foreignkey")
        batch_op.drop_index("ix_messages_body")
        batch_op.drop_column("body_id")
    op.drop_table("received_bodies")
