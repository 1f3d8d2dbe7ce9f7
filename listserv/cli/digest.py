"""``listserv digest``: sending digest issues now."""

from __future__ import annotations

import click

from listserv.cli.base import Context, Group, fail, pass_context
from listserv.digests.issues import request_new_volume, send_due


@click.group(cls=Group)
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
