"""The ``listserv`` command line.

Every command takes ``--config``; it exits 0 on success and 1 with a one-line reason on any
error a user can make (unknown list, invalid address, broken config, unreachable database).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .addresses import InvalidAddress, normalize
from .app import App
from .config import ConfigError, ListConfig, _build, find_config, load_config
from .db import DatabaseError, describe, transaction
from .decorate import parse
from .delivery import queue_counts, resend_failed
from .digests import request_new_volume, send_due
from .lists import UnknownList, all_lists, get_list, member_count, save_list
from .members import DELIVERY_MODES, add_member, find_member, remove_member
from .models import MailingList, Member, Message
from .pipeline import post_sender
from .router import process
from .server import prepare
from .server import serve as run_server


class Failure(click.ClickException):
    """An error shown as one line: ``listserv: <message>``."""

    def show(self, file: Any = None) -> None:
        click.echo(f"listserv: {self.format_message()}", err=True)


def fail(message: str) -> NoReturn:
    raise Failure(message)


class Context:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = prepare(load_config(find_config(self.config_path)))
        return self._app

    @contextmanager
    def session(self) -> Iterator[Session]:
        with transaction(self.app.sessions) as session:
            yield session


pass_context = click.make_pass_decorator(Context)


class Group(click.Group):
    """Turns the errors a user can cause into one line and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigError, DatabaseError, UnknownList, InvalidAddress) as error:
            raise Failure(str(error)) from None
        except SQLAlchemyError as error:
            raise Failure(describe(error)) from None


def emit(data: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    click.echo(
        json.dumps(data, ensure_ascii=False, indent=2, default=str) if as_json else text(data)
    )


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group(cls=Group)
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="Configuration file (default: $LISTSERV_CONFIG, else ./config.toml).",
)
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """listserv: a mailing-list server for regional topic lists."""
    ctx.obj = Context(config_path)


@main.command()
@pass_context
def serve(context: Context) -> None:
    """Run intake, delivery and the schedulers until SIGTERM."""
    config = load_config(find_config(context.config_path))
    logging.basicConfig(
        level=config.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    run_server(config)


@main.group(cls=Group)
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_context
def db_upgrade(context: Context) -> None:
    """Apply schema migrations."""
    context.app  # noqa: B018 - opening the app runs the migrations
    click.echo("database is up to date")


# ---- lists ----------------------------------------------------------------------------------


@main.group(cls=Group)
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
        if session.scalar(select(MailingList).where(MailingList.name == name)):
            fail(f"list {name!r} already exists")
        save_list(session, config)
    click.echo(f"created {name}@{context.app.domain}")


@lists.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def lists_delete(context: Context, name: str, yes: bool) -> None:
    """Delete a list and its members."""
    with context.session() as session:
        mlist = get_list(session, name, context.app.domain)
        if not yes and sys.stdin.isatty():
            click.confirm(
                f"Delete {name} and its {member_count(session, mlist.id)} members?", abort=True
            )
        session.delete(session.get(MailingList, mlist.id))
    click.echo(f"deleted {name}")


# ---- members --------------------------------------------------------------------------------


@main.group(cls=Group)
def members() -> None:
    """Members of a list."""


def member_data(member: Member) -> dict[str, Any]:
    return {
        "address": member.address,
        "display_name": member.display_name,
        "delivery": member.delivery,
        "moderated": member.moderated,
        "bounce_score": member.bounce_score,
        "disabled_reason": member.disabled_reason,
        "subscribed_at": member.subscribed_at.isoformat(),
    }


@members.command("list")
@click.argument("name")
@json_option
@pass_context
def members_list(context: Context, name: str, as_json: bool) -> None:
    """Show a list's members."""
    with context.session() as session:
        mlist = get_list(session, name, context.app.domain)
        rows = session.scalars(
            select(Member).where(Member.list_id == mlist.id).order_by(Member.address)
        )
        data = [member_data(m) for m in rows]
    emit(data, as_json, lambda rows: "\n".join(f"{r['address']}  {r['delivery']}" for r in rows))


delivery_flags = [
    click.option("--digest", "delivery", flag_value="digest", help="Digest (MIME) delivery."),
    click.option("--plain", "delivery", flag_value="plain", help="Plain-text digest delivery."),
    click.option("--html", "delivery", flag_value="html", help="HTML digest delivery."),
]


def with_delivery_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    for flag in reversed(delivery_flags):
        command = flag(command)
    return command


@members.command("add")
@click.argument("name")
@click.argument("addresses", nargs=-1, required=True)
@with_delivery_flags
@pass_context
def members_add(
    context: Context, name: str, addresses: tuple[str, ...], delivery: str | None
) -> None:
    """Subscribe addresses directly (no confirmation)."""
    normalized = [normalize(a) for a in addresses]
    with context.session() as session:
        mlist = get_list(session, name, context.app.domain)
        for address in normalized:
            _, new = add_member(session, mlist.id, address, delivery=delivery or "regular")
            click.echo(f"{'added' if new else 'already a member'}: {address}")


@members.command("remove")
@click.argument("name")
@click.argument("addresses", nargs=-1, required=True)
@pass_context
def members_remove(context: Context, name: str, addresses: tuple[str, ...]) -> None:
    """Unsubscribe addresses directly."""
    normalized = [normalize(a) for a in addresses]
    with context.session() as session:
        mlist = get_list(session, name, context.app.domain)
        missing = [a for a in normalized if not find_member(session, mlist.id, a)]
        if missing:
            fail(f"not a member of {name}: {missing[0]}")
        for address in normalized:
            remove_member(session, mlist.id, address)
            click.echo(f"removed: {address}")


def read_addresses(text: str) -> Iterator[tuple[int, str, str]]:
    """(line number, display name, address) for each address line of an import file."""
    from email.utils import parseaddr

    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        display_name, address = parseaddr(line)
        yield number, display_name, address or line


@members.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_delivery_flags
@pass_context
def members_import(context: Context, name: str, file: Path, delivery: str | None) -> None:
    """Subscribe every address in FILE (one per line, "Name <address>" allowed)."""
    entries = []
    for number, display_name, address in read_addresses(file.read_text(encoding="utf-8")):
        try:
            entries.append((display_name, normalize(address)))
        except InvalidAddress as error:
            fail(f"{file}:{number}: {error}")
    added = 0
    with context.session() as session:
        mlist = get_list(session, name, context.app.domain)
        for display_name, address in entries:
            _, new = add_member(
                session,
                mlist.id,
                address,
                display_name=display_name,
                delivery=delivery or "regular",
            )
            added += new
    click.echo(f"imported {added} new members ({len(entries) - added} already subscribed)")


@members.command("set")
@click.argument("name")
@click.argument("address")
@click.option("--delivery", type=click.Choice(DELIVERY_MODES))
@click.option("--moderated/--unmoderated", default=None, help="Hold this member's posts.")
@pass_context
def members_set(
    context: Context, name: str, address: str, delivery: str | None, moderated: bool | None
) -> None:
    """Change a member's settings."""
    with context.session() as session:
        mlist = get_list(session, name, context.app.domain)
        member = find_member(session, mlist.id, address)
        if member is None:
            fail(f"not a member of {name}: {normalize(address)}")
        if delivery is not None:
            member.delivery = delivery
        if moderated is not None:
            member.moderated = moderated
        click.echo(f"{member.address}: delivery {member.delivery}, moderated {member.moderated}")


# ---- queue and inject -----------------------------------------------------------------------


@main.group(cls=Group)
def queue() -> None:
    """The outbound queue."""


@queue.command("status")
@json_option
@pass_context
def queue_status(context: Context, as_json: bool) -> None:
    """Recipients queued, deferred, being sent, sent and failed."""
    counts = queue_counts(context.app)
    with context.session() as session:
        counts["inbox"] = len(
            session.scalars(select(Message.id).where(Message.status == "new")).all()
        )
    emit(counts, as_json, lambda c: "\n".join(f"{k}: {v}" for k, v in c.items()))


@queue.command("retry")
@click.option("--domain", help="Only recipients at this domain.")
@pass_context
def queue_retry(context: Context, domain: str | None) -> None:
    """Send failed deliveries again (once a provider's block is lifted)."""
    count = resend_failed(context.app, domain)
    click.echo(f"queued {count} recipients again")


@main.command()
@click.argument("name")
@click.argument("file", type=click.File("rb"), default="-")
@pass_context
def inject(context: Context, name: str, file: Any) -> None:
    """Process a message (stdin without FILE) as if it had been posted to NAME."""
    raw = file.read()
    if not raw.strip():
        fail("empty message")
    app = context.app
    with context.session() as session:
        mlist = get_list(session, name, app.domain)
        stored = Message(
            mail_from=post_sender(parse(raw), ""),
            rcpt_to=mlist.address(),
            raw=raw,
            status="new",
            claimed_by="inject",
        )
        session.add(stored)
        session.flush()
        message_id = stored.id
    outcome = process(app, message_id)
    if outcome.startswith("failed"):
        fail(outcome)
    click.echo(f"message {message_id}: {outcome}")


# ---- digests --------------------------------------------------------------------------------


@main.group(cls=Group)
def digest() -> None:
    """Digest issues."""


@digest.command("send")
@click.argument("name", required=False)
@click.option("--new-volume", is_flag=True, help="Start a new volume with this issue (NAME only).")
@pass_context
def digest_send(context: Context, name: str | None, new_volume: bool) -> None:
    """Send the pending digest of NAME (or of every list) now."""
    if new_volume and not name:
        fail("--new-volume needs a list NAME")
    if new_volume:
        request_new_volume(context.app, name or "")
    sent = send_due(context.app, [name] if name else None, force=True)
    for list_name, issue in sent.items():
        if issue or name:
            click.echo(f"{list_name}: {issue or 'no posts pending'}")
    failed = [n for n, issue in sent.items() if issue and issue.startswith("failed")]
    if failed:
        fail(f"digest of {failed[0]} not sent")
    if not any(sent.values()) and not name:
        click.echo("no posts pending")
