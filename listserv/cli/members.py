"""``listserv members``: listing, adding, removing, importing and changing members."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from listserv.bounces.scores import enable_delivery, member_state
from listserv.cli.base import (
    Context,
    Group,
    columns,
    emit,
    fail,
    json_option,
    pass_context,
    progress_bar,
    when,
)
from listserv.commands.roster import member_data
from listserv.commands.subscriptions import pending_confirmations, welcome
from listserv.mail.address_lines import read_addresses
from listserv.mail.addresses import InvalidAddress, normalize
from listserv.store.lists import get_list
from listserv.store.members import (
    DELIVERY_MODES,
    add_member,
    change_member,
    find_member,
    import_members,
    members_of,
    remove_member,
)
from listserv.store.models import Token


@click.group(cls=Group)
def members() -> None:
    """Members of a list."""


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
                lambda rows: columns(
                    [[r["address"], r["action"], f"expires {when(r['expires_at'])}"] for r in rows]
                ),
            )
            return
        data = [member_data(m) for m in members_of(session, mlist.id)]
    emit(
        data,
        as_json,
        lambda rows: columns([[r["address"], r["delivery"], r["state"]] for r in rows]),
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


@members.command("import")
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_delivery_flags
@pass_context
def members_import(context: Context, name: str, file: Path, delivery: str | None) -> None:
    """Subscribe every address in FILE (one per line, "Name <address>" allowed)."""

    def entries(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
        for number, display_name, address in read_addresses(lines):
            try:
                yield display_name, normalize(address)
            except InvalidAddress:
                fail(f"{file}:{number}: not a mail address: {address!r}")

    # Read as it is imported, in one transaction: an invalid line (or a file that is not
    # UTF-8) rolls back everything. utf-8-sig: spreadsheet exports often start with a BOM.
    try:
        with (
            file.open(encoding="utf-8-sig") as lines,
            context.session() as session,
            progress_bar("Importing") as progress,
        ):
            mlist = get_list(session, name, context.app.domain)
            total = line_count(file) if progress is not None else 0
            given, added = import_members(
                session,
                mlist.id,
                entries(lines),
                delivery or "regular",
                (lambda done: progress(done, total)) if progress is not None else None,
            )
    except UnicodeDecodeError:
        fail(f"{file}: not UTF-8 text; save it as UTF-8 and try again")
    click.echo(f"imported {added} new members ({given - added} already subscribed)")


def line_count(file: Path) -> int:
    """Lines in *file*, counted without decoding: the length of the progress bar."""
    with file.open("rb") as data:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: data.read(1 << 20), b""))


@members.command("set")
@click.argument("name")
@click.argument("address")
@click.option(
    "--delivery",
    type=click.Choice(DELIVERY_MODES),
    help="Each post (regular), a digest (digest, plain, html) or nothing (nomail).",
)
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
        change_member(member, delivery=delivery, moderated=moderated)
        if enable:
            enable_delivery(member)
        click.echo(
            f"{member.address}: delivery {member.delivery}, moderated {member.moderated}, "
            f"{member_state(member)}"
        )
