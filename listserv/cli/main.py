"""The ``listserv`` command line.

Every command takes ``--config``; it exits 0 on success and 1 with a one-line reason on any
error a user can make (unknown list, invalid address, broken config, unreachable database).
"""

from __future__ import annotations

import getpass
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.auth.dkim import dns_record, generate_key, signing_domain
from listserv.bounces.scores import enable_delivery, member_state
from listserv.commands.subscriptions import delivery_counts, pending_confirmations, welcome
from listserv.config import ConfigError, ListConfig, _build, find_config, load_config
from listserv.delivery.queue_admin import queue_counts, resend_failed
from listserv.digests.issues import request_new_volume, send_due
from listserv.housekeeping import prune
from listserv.intake.router import process
from listserv.mail.addresses import InvalidAddress, normalize, parse_recipient
from listserv.mail.codec import parse
from listserv.moderation.decisions import Decider, NotPending, held_posts, locked_held, settle
from listserv.moderation.expiry import run_schedule
from listserv.posting.aliases import list_aliases, revoke
from listserv.posting.hold import expires_at
from listserv.posting.pipeline import post_sender
from listserv.server import prepare
from listserv.server import serve as run_server
from listserv.store.db import DatabaseError, describe, transaction
from listserv.store.lists import (
    MailList,
    UnknownList,
    all_lists,
    get_list,
    list_by_id,
    member_count,
    save_list,
)
from listserv.store.members import (
    DELIVERY_MODES,
    add_member,
    find_member,
    import_members,
    remove_member,
)
from listserv.store.models import HeldMessage, InboxMessage, MailingList, Member, Token


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


def remember_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.find_object(Context).config_path = value  # type: ignore[union-attr]


class ConfigCommand(click.Command):
    """A command that also takes ``--config`` after its name (``listserv serve --config …``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(
            click.Option(
                ["--config"],
                metavar="PATH",
                expose_value=False,
                is_eager=True,
                callback=remember_config,
                help="Configuration file (default: $LISTSERV_CONFIG, else ./config.toml).",
            )
        )


class Group(click.Group):
    """Turns the errors a user can cause into one line and exit status 1."""

    command_class = ConfigCommand

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


@db.command("prune")
@pass_context
def db_prune(context: Context) -> None:
    """Delete what housekeeping deletes (serve does it on a schedule), now."""
    pruned = prune(context.app)
    click.echo("\n".join(f"{table}: {count} deleted" for table, count in pruned.items()))


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
    if name in {declared.name for declared in context.app.config.lists}:
        # It would come back, empty, at the next start: its members would be lost for nothing.
        fail(f"list {name!r} is declared in {context.app.config.path}; remove it there first")
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
        "state": member_state(member),
        "last_bounce_at": member.last_bounce_at.isoformat() if member.last_bounce_at else None,
        "bounce_warnings": member.bounce_warnings,
    }


def pending_data(token: Token) -> dict[str, Any]:
    return {
        "address": token.address,
        "action": token.action,
        "delivery": (token.payload or {}).get("delivery", ""),
        "requested_at": token.created_at.isoformat(),
        "expires_at": token.expires_at.isoformat(),
    }


@members.command("list")
@click.argument("name")
@click.option("--pending", is_flag=True, help="Show requests awaiting the address's confirmation.")
@json_option
@pass_context
def members_list(context: Context, name: str, pending: bool, as_json: bool) -> None:
    """Show a list's members (or, with --pending, unconfirmed requests)."""
    with context.session() as session:
        mlist = get_list(session, name, context.app.domain)
        if pending:
            requests = [pending_data(t) for t in pending_confirmations(session, mlist.id)]
            emit(
                requests,
                as_json,
                lambda rows: "\n".join(
                    f"{r['address']}  {r['action']}  expires {r['expires_at'][:16]}" for r in rows
                ),
            )
            return
        rows = session.scalars(
            select(Member).where(Member.list_id == mlist.id).order_by(Member.address)
        )
        data = [member_data(m) for m in rows]
    emit(
        data,
        as_json,
        lambda rows: "\n".join(f"{r['address']}  {r['delivery']}  {r['state']}" for r in rows),
    )


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
@click.option("--no-welcome", is_flag=True, help="Do not send the welcome message.")
@pass_context
def members_add(
    context: Context,
    name: str,
    addresses: tuple[str, ...],
    delivery: str | None,
    no_welcome: bool,
) -> None:
    """Subscribe addresses directly (no confirmation)."""
    normalized = [normalize(a) for a in addresses]
    with context.session() as session:
        mlist = get_list(session, name, context.app.domain)
        for address in normalized:
            member, new = add_member(session, mlist.id, address, delivery=delivery or "regular")
            if new and not no_welcome:
                welcome(context.app, session, mlist, member)
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


# "Name <address>" or a bare address with nothing parseaddr would read differently: read
# without it, which is most of the time of importing 100,000 members.
PLAIN_ADDRESS_LINE = re.compile(r'^(?:([^"(),;:<>@\[\]\\]*?)\s*<([^<>\s"]+)>|([^<>\s"(),;:]+))$')


def read_addresses(text: str) -> Iterator[tuple[int, str, str]]:
    """(line number, display name, address) for each address line of an import file."""
    from email.utils import parseaddr

    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        plain = PLAIN_ADDRESS_LINE.match(line)
        if plain:
            yield number, plain[1] or "", plain[2] or plain[3]
            continue
        display_name, address = parseaddr(line)
        if not address or (not display_name and address != line.strip("<>")):
            address = line  # parseaddr dropped part of it: let the whole line be refused
        yield number, display_name, address


@members.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_delivery_flags
@pass_context
def members_import(context: Context, name: str, file: Path, delivery: str | None) -> None:
    """Subscribe every address in FILE (one per line, "Name <address>" allowed)."""
    try:
        # utf-8-sig: spreadsheet exports often start with a byte-order mark.
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        fail(f"{file}: not UTF-8 text; save it as UTF-8 and try again")
    entries = []
    for number, display_name, address in read_addresses(text):
        try:
            entries.append((display_name, normalize(address)))
        except InvalidAddress:
            fail(f"{file}:{number}: not a mail address: {address!r}")
    with context.session() as session:
        mlist = get_list(session, name, context.app.domain)
        added = import_members(session, mlist.id, entries, delivery or "regular")
    click.echo(f"imported {added} new members ({len(entries) - added} already subscribed)")


@members.command("set")
@click.argument("name")
@click.argument("address")
@click.option("--delivery", type=click.Choice(DELIVERY_MODES))
@click.option("--moderated/--unmoderated", default=None, help="Hold this member's posts.")
@click.option("--enable", is_flag=True, help="Deliver again after bounces; reset the score.")
@pass_context
def members_set(
    context: Context,
    name: str,
    address: str,
    delivery: str | None,
    moderated: bool | None,
    enable: bool,
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
        if enable:
            enable_delivery(member)
        click.echo(
            f"{member.address}: delivery {member.delivery}, moderated {member.moderated}, "
            f"{member_state(member)}"
        )


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
        counts["inbox"] = session.scalar(
            select(func.count()).select_from(InboxMessage).where(InboxMessage.status == "new")
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
        stored = InboxMessage(
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


# ---- dkim and aliases -----------------------------------------------------------------------


@main.group(cls=Group)
def dkim() -> None:
    """DKIM signing key."""


@dkim.command("keygen")
@click.option("--bits", default=2048, show_default=True, type=click.IntRange(1024, 8192))
@click.option("--force", is_flag=True, help="Replace an existing key.")
@pass_context
def dkim_keygen(context: Context, bits: int, force: bool) -> None:
    """Write a new key to [dkim] private_key and print the DNS record to publish."""
    config = load_config(find_config(context.config_path))
    if config.dkim is None:
        fail("dkim: no [dkim] section in the configuration")
    path = config.resolve(config.dkim.private_key)
    if path.exists() and not force:
        fail(f"dkim.private_key: {path} exists; use --force to replace it")
    public = generate_key(path, bits)
    click.echo(f"wrote {path}; publish this TXT record:")
    click.echo(dns_record(config.dkim.selector, signing_domain(config), public))


@main.group(cls=Group)
def aliases() -> None:
    """Poster aliases of DMARC-rewritten posts."""


@aliases.command("list")
@click.argument("name")
@json_option
@pass_context
def aliases_list(context: Context, name: str, as_json: bool) -> None:
    """Show a list's poster aliases."""
    with context.session() as session:
        mlist = get_list(session, name, context.app.domain)
        data = [
            {
                "alias": mlist.address("alias", row.alias),
                "address": row.address,
                "created_at": row.created_at.isoformat(),
                "revoked": row.revoked_at is not None,
            }
            for row in list_aliases(session, mlist.id)
        ]
    emit(
        data,
        as_json,
        lambda rows: "\n".join(
            f"{r['alias']}  {r['address']}{'  (revoked)' if r['revoked'] else ''}" for r in rows
        ),
    )


@aliases.command("revoke")
@click.argument("name")
@click.argument("alias")
@pass_context
def aliases_revoke(context: Context, name: str, alias: str) -> None:
    """Stop an alias (its address, or the part after "+p-") forwarding to its poster."""
    with context.session() as session:
        mlist = get_list(session, name, context.app.domain)
        target = parse_recipient(alias, context.app.domain, {name}) if "@" in alias else None
        if not revoke(session, mlist.id, target.detail if target else alias):
            fail(f"no live alias {alias!r} on {name}")
    click.echo(f"revoked {alias}")


# ---- held posts -----------------------------------------------------------------------------


@main.group(cls=Group)
def held() -> None:
    """Posts held for moderation."""


def operator() -> str:
    """Who decides at the command line, as recorded with the decision."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "operator"
    return f"{user} (command line)"


def held_data(post: HeldMessage, mlist: MailList) -> dict[str, Any]:
    return {
        "id": post.id,
        "list": mlist.name,
        "sender": post.sender,
        "subject": post.subject,
        "rule": post.rule,
        "reason": post.reason,
        "held_at": post.held_at.isoformat(),
        "expires_at": expires_at(mlist, post).isoformat(),
        "status": post.status,
        "decided_at": post.decided_at.isoformat() if post.decided_at else None,
        "decided_by": post.decided_by or None,
        "decided_via": post.decided_via or None,
        "decision_reason": post.decision_reason or None,
    }


def held_line(row: dict[str, Any]) -> str:
    status = "" if row["status"] == "pending" else f" [{row['status']}]"
    who = f"{row['id']:>6}  {row['list']:<20} {row['sender']:<32}"
    return f"{who} {row['rule']}{status}  {row['subject']}"


@held.command("list")
@click.argument("name", required=False)
@click.option("--all", "include_decided", is_flag=True, help="Include decided posts.")
@json_option
@pass_context
def held_list(context: Context, name: str | None, include_decided: bool, as_json: bool) -> None:
    """Show posts waiting for a decision (all lists without NAME)."""
    with context.session() as session:
        lists = {m.id: m for m in all_lists(session, context.app.domain)}
        list_id = get_list(session, name, context.app.domain).id if name else None
        data = [
            held_data(post, lists[post.list_id])
            for post in held_posts(session, list_id, include_decided)
        ]
    emit(data, as_json, lambda rows: "\n".join(held_line(r) for r in rows))


def find_held(session: Session, held_id: int, domain: str) -> tuple[HeldMessage, MailList]:
    post = locked_held(session, held_id)
    if post is None:
        fail(f"no held message {held_id}")
    return post, list_by_id(session, post.list_id, domain)


@held.command("show")
@click.argument("held_id", metavar="ID", type=int)
@json_option
@pass_context
def held_show(context: Context, held_id: int, as_json: bool) -> None:
    """Show a held post and the message as received."""
    with context.session() as session:
        post, mlist = find_held(session, held_id, context.app.domain)
        data = held_data(post, mlist)
        stored = session.get(InboxMessage, post.message_id)
        data["message"] = stored.raw.decode("utf-8", "replace") if stored else ""
    emit(
        data,
        as_json,
        lambda d: (
            "\n".join(f"{k}: {v}" for k, v in d.items() if k != "message") + "\n\n" + d["message"]
        ),
    )


def decide_held(context: Context, held_id: int, action: str, **options: Any) -> None:
    app = context.app
    with context.session() as session:
        post, mlist = find_held(session, held_id, app.domain)
        try:
            outcome = settle(
                app, session, mlist, post, action, Decider(operator(), "cli"), **options
            )
        except NotPending as error:
            fail(str(error))
    click.echo(outcome)


@held.command("approve")
@click.argument("held_id", metavar="ID", type=int)
@click.option("--always", is_flag=True, help="Let this sender post without moderation.")
@pass_context
def held_approve(context: Context, held_id: int, always: bool) -> None:
    """Send a held post to the list."""
    decide_held(context, held_id, "approve", always=always)


@held.command("reject")
@click.argument("held_id", metavar="ID", type=int)
@click.option("--reason", default="", help="Told to the sender.")
@pass_context
def held_reject(context: Context, held_id: int, reason: str) -> None:
    """Refuse a held post; the sender is told (with the reason)."""
    decide_held(context, held_id, "reject", reason=reason)


@held.command("discard")
@click.argument("held_id", metavar="ID", type=int)
@pass_context
def held_discard(context: Context, held_id: int) -> None:
    """Drop a held post without telling the sender."""
    decide_held(context, held_id, "discard")


@held.command("expire")
@click.option(
    "--at",
    "at",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"]),
    help="Run as of this UTC time instead of now.",
)
@pass_context
def held_expire(context: Context, at: datetime | None) -> None:
    """Expire overdue held posts and send due reminders now (serve does it on a schedule)."""
    run = run_schedule(context.app, at.replace(tzinfo=UTC) if at else None)
    click.echo(f"expired {run.expired} held messages, sent {run.reminders} reminders")


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
