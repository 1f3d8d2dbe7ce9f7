"""``listserv archive``: import and export mbox files, remove a post, erase a person's posts,
rebuild threads and the search index."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from listserv.archive.manage import import_mbox, reindex
from listserv.archive.mbox import count_mbox, mbox_of
from listserv.archive.reading import month_bounds, posts_between
from listserv.archive.store import find_post, forget_address, remove_post
from listserv.cli.base import Context, Group, fail, pass_context
from listserv.mail.addresses import normalize
from listserv.store.lists import all_lists, get_list


@click.group(cls=Group)
def archive() -> None:
    """List archives."""


@archive.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_context
def archive_import(context: Context, name: str, file: Path) -> None:
    """Archive the posts of an mbox FILE (Mailman 2 or 3 export, gzipped or not) in NAME;
    posts already archived (same Message-ID) are skipped."""
    app = context.app
    with app.sessions() as session:
        mlist = get_list(session, name, app.domain)
    try:
        if sys.stdout.isatty():
            with click.progressbar(length=count_mbox(file), label="importing") as bar:
                imported, skipped = import_mbox(app.sessions, mlist, file, bar.update)
        else:
            imported, skipped = import_mbox(app.sessions, mlist, file)
    except (OSError, ValueError) as error:
        fail(f"{file}: cannot read as mbox: {error}")
    click.echo(f"{name}: {imported} posts imported, {skipped} already archived")


@archive.command("export")
@click.argument("name")
@click.option("--month", metavar="YYYY-MM", help="Only the posts of this month (UTC).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="File.")
@pass_context
def archive_export(context: Context, name: str, month: str | None, output: Path | None) -> None:
    """Write NAME's archive (or one month of it) as mbox, to stdout or FILE."""
    app = context.app
    with app.sessions() as session:
        mlist = get_list(session, name, app.domain)
        bounds = month_bounds(month) if month else None
        if month and bounds is None:
            fail(f"--month: expected YYYY-MM, got {month!r}")
        rows = posts_between(session, mlist.id, *(bounds or ()))
    target = output.open("wb") if output else click.get_binary_stream("stdout")
    try:
        for entry in mbox_of(rows):
            target.write(entry)
    finally:
        if output:
            target.close()


@archive.command("remove")
@click.argument("name")
@click.argument("message_id")
@click.option("--reason", default="", help="Shown where the post was.")
@pass_context
def archive_remove(context: Context, name: str, message_id: str, reason: str) -> None:
    """Delete one post from NAME's archive for good (pages, search, feeds, exports)."""
    with context.session() as session:
        mlist = get_list(session, name, context.app.domain)
        row = find_post(session, mlist.id, message_id)
        if row is None or row.raw is None:
            fail(f"no archived post {message_id!r} in {name}")
        remove_post(session, row, reason)
    click.echo(f"removed {message_id} from {name}")


@archive.command("forget")
@click.argument("address")
@click.option("--list", "name", help="Only in this list's archive.")
@pass_context
def archive_forget(context: Context, address: str, name: str | None) -> None:
    """Erase every archived post by ADDRESS (of every list, or of one)."""
    with context.session() as session:
        list_id = get_list(session, name, context.app.domain).id if name else None
        erased = forget_address(session, normalize(address), list_id)
    click.echo(f"erased {erased} posts by {address}")


@archive.command("reindex")
@click.argument("name", required=False)
@pass_context
def archive_reindex(context: Context, name: str | None) -> None:
    """Rebuild threads and the search index of NAME (or of every list)."""
    app = context.app
    with app.sessions() as session:
        lists = [get_list(session, name, app.domain)] if name else all_lists(session, app.domain)
    for mlist in lists:
        with context.session() as session:
            count = reindex(session, mlist.id)
        click.echo(f"{mlist.name}: {count} posts indexed")
