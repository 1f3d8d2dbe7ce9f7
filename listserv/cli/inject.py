"""``listserv inject``: process a message as if it had arrived by SMTP."""

from __future__ import annotations

import click

from listserv.cli.base import ConfigCommand, Context, fail, pass_context
from listserv.intake.router import process
from listserv.intake.smtp import store_messages
from listserv.mail.codec import parse
from listserv.posting.pipeline import post_sender
from listserv.store.lists import get_list


def read_message(file: str) -> bytes:
    try:
        with click.open_file(file, "rb") as stream:
            raw: bytes = stream.read()
    except OSError as error:
        fail(f"{file}: {error.strerror or error}")
    if not raw.strip():
        fail("empty message")
    return raw


@click.command(cls=ConfigCommand)
@click.argument("name")
@click.argument("file", default="-", type=click.Path(dir_okay=False, allow_dash=True))
@pass_context
def inject(context: Context, name: str, file: str) -> None:
    """Process a message (stdin without FILE) as if it had been posted to NAME."""
    app = context.app
    # The list first: a mistyped name is the likelier mistake, and stdin may not end.
    with context.session() as session:
        address = get_list(session, name, app.domain).address()
    raw = read_message(file)
    sender = post_sender(parse(raw), "")
    (message_id,) = store_messages(app, sender, [address], raw, claimed_by="inject")
    outcome = process(app, message_id)
    if outcome.startswith("failed"):
        fail(outcome)
    click.echo(f"message {message_id}: {outcome}")
