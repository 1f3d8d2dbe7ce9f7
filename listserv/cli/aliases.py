"""``listserv aliases``: poster aliases of DMARC-rewritten posts."""

from __future__ import annotations

import click

from listserv.cli.base import Context, Group, columns, emit, fail, json_option, pass_context
from listserv.mail.addresses import parse_recipient
from listserv.posting.aliases import list_aliases, revoke
from listserv.store.lists import get_list


@click.group(cls=Group)
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
        lambda rows: columns(
            [[r["alias"], r["address"], "(revoked)" if r["revoked"] else ""] for r in rows]
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
