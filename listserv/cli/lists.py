"""``listserv lists``: creating, showing and deleting lists."""

from __future__ import annotations

import sys
from typing import Any

import click
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.cli.base import Context, Group, emit, fail, json_option, pass_context
from listserv.commands.subscriptions import delivery_counts, pending_confirmations
from listserv.config import ListConfig, _build
from listserv.mail.addresses import normalize
from listserv.store.lists import (
    all_lists,
    delete_list,
    get_list,
    list_exists,
    member_count,
    save_list,
)


@click.group(cls=Group)
def lists() -> None:
    """Mailing lists."""


def list_summary(session: Session, app: App) -> list[dict[str, Any]]:
    return [
        {
            "name": mlist.name,
            "address": mlist.address(),
            "title": mlist.config.title,
            "region": mlist.config.region,
            "topic": mlist.config.topic,
            "language": mlist.config.language,
            "posting": mlist.config.posting,
            "members": member_count(session, mlist.id),
        }
        for mlist in all_lists(session, app.domain)
    ]


@lists.command("list")
@json_option
@pass_context
def lists_list(context: Context, as_json: bool) -> None:
    """Show every list."""
    with context.session() as session:
        data = list_summary(session, context.app)
    emit(
        data,
        as_json,
        lambda rows: "\n".join(f"{r['name']:<24} {r['members']:>7}  {r['title']}" for r in rows),
    )


@lists.command("show")
@click.argument("name")
@json_option
@pass_context
def lists_show(context: Context, name: str, as_json: bool) -> None:
    """Show a list's settings and counts."""
    with context.session() as session:
        mlist = get_list(session, name, context.app.domain)
        data = {
            "address": mlist.address(),
            "members": member_count(session, mlist.id),
            "members_by_delivery": delivery_counts(session, mlist.id),
            "pending_confirmations": len(pending_confirmations(session, mlist.id)),
            **mlist.config.settings(),
        }
    emit(data, as_json, lambda d: "\n".join(f"{k}: {v}" for k, v in d.items()))


@lists.command("create")
@click.argument("name")
@click.option("--title", default="")
@click.option("--region", default="")
@click.option("--topic", default="")
@click.option("--language", default="en", show_default=True)
@click.option("--posting", default="members", show_default=True)
@click.option("--nonmember-action", default="hold", show_default=True)
@click.option("--moderator", "moderators", multiple=True, help="Repeat for several.")
@click.option("--owner", "owners", multiple=True, help="Repeat for several.")
@click.option("--subject-prefix", default=None)
@click.option("--reply-to", default="poster", show_default=True)
@pass_context
def lists_create(context: Context, name: str, **options: Any) -> None:
    """Create a list (lists in the config file are created at start)."""
    settings = {"name": name, **{k: v for k, v in options.items() if v is not None}}
    settings["moderators"] = [normalize(a) for a in options["moderators"]]
    settings["owners"] = [normalize(a) for a in options["owners"]]
    config = _build(ListConfig, settings, f"lists.{name}")
    with context.session() as session:
        if list_exists(session, name):
            fail(f"list {name!r} already exists")
        save_list(session, config)
    click.echo(f"created {name}@{context.app.domain}")


@lists.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def lists_delete(context: Context, name: str, yes: bool) -> None:
    """Delete a list and its members."""
    if name in {declared.name for declared in context.app.config.lists}:
        # It would come back, empty, at the next start: its members would be lost for nothing.
        fail(f"list {name!r} is declared in {context.app.config.path}; remove it there first")
    with context.session() as session:
        mlist = get_list(session, name, context.app.domain)
        if not yes and sys.stdin.isatty():
            click.confirm(
                f"Delete {name} and its {member_count(session, mlist.id)} members?", abort=True
            )
        delete_list(session, mlist.id)
    click.echo(f"deleted {name}")
