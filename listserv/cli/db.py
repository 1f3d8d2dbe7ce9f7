"""``listserv db``: the database schema and housekeeping."""

from __future__ import annotations

import click

from listserv.cli.base import Context, Group, pass_context, progress_bar
from listserv.housekeeping import prune


@click.group(cls=Group)
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_context
def db_upgrade(context: Context) -> None:
    """Apply schema migrations."""
    context.app  # noqa: B018 - opening the app runs the migrations
    click.echo("database is up to date")


@db.command("prune")
@pass_context
def db_prune(context: Context) -> None:
    """Delete what housekeeping deletes (serve does it on a schedule), now."""
    with progress_bar("Pruning") as progress:
        pruned = prune(context.app, progress=progress)
    click.echo("\n".join(f"{table}: {count} deleted" for table, count in pruned.items()))
