"""``listserv lists``: creating, showing and deleting lists."""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import click
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.cli.base import Context, Group, as_text, emit, fail, json_option, pass_context
from listserv.commands.subscriptions import delivery_counts, pending_confirmations
from listserv.config import ConfigError, ListConfig
from listserv.config_values import build
from listserv.mail.addresses import normalize
from listserv.store.lists import (
    all_lists,
    delete_list,
    get_list,
    list_exists,
    member_count,
    save_list,
)

FC = TypeVar("FC", bound=Callable[..., Any])


@click.group(cls=Group)
def lists() -> None:
    """Mailing lists."""


def setting(key: str, default: str, meaning: str) -> Callable[[FC], FC]:
    """The option of a list setting with fixed values, offering those ListConfig accepts."""
    values = typing.get_args(typing.get_type_hints(ListConfig)[key])
    flag = "--" + key.replace("_", "-")
    return click.option(
        flag, type=click.Choice(values), default=default, show_default=True, help=meaning
    )


def as_flags(message: str, name: str) -> str:
    """A list setting's error as the flag that gave it (``lists.x.region:`` → ``--region:``)."""
    key, colon, rest = message.partition(":")
    if key == "lists.name":
        return f"NAME{colon}{rest}"
    if colon and key.startswith(f"lists.{name}."):
        return f"--{key.removeprefix(f'lists.{name}.').replace('_', '-')}{colon}{rest}"
    return message


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
    emit(data, as_json, as_text)


@lists.command("create")
@click.argument("name")
@click.option("--title", default="", help="Shown in list mail and in `lists list`.")
@click.option("--region", default="", help="The region the list is about.")
@click.option("--topic", default="", help="The topic the list is about.")
@setting("language", "en", "Language of the mail the list writes.")
@setting("posting", "members", "Who may post: anyone, members, all moderated, moderators only.")
@setting("nonmember_action", "hold", "What becomes of a post from a non-member.")
@click.option(
    "--moderator", "moderators", multiple=True, metavar="ADDR", help="Repeat for several."
)
@click.option("--owner", "owners", multiple=True, metavar="ADDR", help="Repeat for several.")
@click.option(
    "--subject-prefix", default=None, help='Put before each subject  [default: "[NAME] "]'
)
@setting("reply_to", "poster", "Where replies to a post go.")
@pass_context
def lists_create(context: Context, name: str, **options: Any) -> None:
    """Create a list (lists in the config file are created at start)."""
    settings = {"name": name, **{k: v for k, v in options.items() if v is not None}}
    settings["moderators"] = [normalize(a) for a in options["moderators"]]
    settings["owners"] = [normalize(a) for a in options["owners"]]
    try:
        config = build(ListConfig, settings, f"lists.{name}")
    except ConfigError as error:
        fail(as_flags(str(error), name))
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
