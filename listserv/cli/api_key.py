"""``listserv api-key``: keys of the REST API (``/api/v1/``)."""

from __future__ import annotations

import click

from listserv.cli.base import Context, Group, columns, emit, fail, json_option, pass_context
from listserv.store.api_keys import ApiKeyError, api_keys, create_api_key, revoke_api_key
from listserv.store.lists import list_exists


@click.group("api-key", cls=Group)
def api_key() -> None:
    """Keys of the REST API."""


@api_key.command("create")
@click.argument("name")
@click.option("--list", "lists", multiple=True, metavar="L", help="Only this list (repeatable).")
@click.option("--read-only", is_flag=True, help="May read, never change anything.")
@pass_context
def api_key_create(context: Context, name: str, lists: tuple[str, ...], read_only: bool) -> None:
    """Create a key and print it (once: only its hash is kept)."""
    with context.session() as session:
        for list_name in lists:
            if not list_exists(session, list_name):
                fail(f"no list named {list_name!r}")
        try:
            key = create_api_key(session, name, list(lists), read_only)
        except ApiKeyError as error:
            fail(str(error))
    click.echo(key)


@api_key.command("list")
@json_option
@pass_context
def api_key_list(context: Context, as_json: bool) -> None:
    """Show the keys (never the keys themselves): lists, read-only, revoked."""
    with context.session() as session:
        data = [
            {
                "name": row.name,
                "lists": row.lists or [],
                "read_only": row.read_only,
                "created_at": row.created_at.isoformat(),
                "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
            }
            for row in api_keys(session)
        ]

    def text(rows: list[dict]) -> str:
        return columns(
            [
                [
                    r["name"],
                    ",".join(r["lists"]) or "(all lists)",
                    "read-only" if r["read_only"] else "read-write",
                    "revoked" if r["revoked_at"] else "active",
                ]
                for r in rows
            ]
        )

    emit(data, as_json, text)


@api_key.command("revoke")
@click.argument("name")
@pass_context
def api_key_revoke(context: Context, name: str) -> None:
    """Revoke a key: it stops working at once."""
    with context.session() as session:
        try:
            revoke_api_key(session, name)
        except ApiKeyError as error:
            fail(str(error))
    click.echo(f"revoked: {name}")
