"""Alembic environment: migrations run on the connection listserv hands over."""

from alembic import context

from listserv.store.models import Base, described_by_models

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    include_object=described_by_models,
)
with context.begin_transaction():
    context.run_migrations()
