"""``listserv inject``: process a message as if it had arrived by SMTP."""

from __future__ import annotations

from typing import Any

import click

from listserv.cli.base import ConfigCommand, Context, fail, pass_context
from listserv.intake.router import process
from listserv.intake.smtp import store_messages
from listserv.mail.codec import parse
from listserv.posting.pipeline import post_sender
from listserv.store.lists import get_list


@click.command(cls=ConfigCommand)
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
        address = get_list(session, name, app.domain).address()
    sender = post_sender(parse(raw), "")
    (message_id,) = store_messages(app, sender, [address], raw, claimed_by="inject")
    outcome = process(app, message_id)
    if outcome.startswith("failed"):
        fail(outcome)
    click.echo(f"message {message_id}: {outcome}")
