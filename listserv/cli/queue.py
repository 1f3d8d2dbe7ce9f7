"""``listserv queue``: the outbound queue."""

from __future__ import annotations

import click

from listserv.cli.base import Context, Group, emit, fail, json_option, pass_context
from listserv.delivery.queue_admin import resend_failed
from listserv.intake.inbox import queue_status, queue_text, reprocess
from listserv.mail.addresses import InvalidAddress, normalize_domain


@click.group(cls=Group)
def queue() -> None:
    """The outbound queue."""


@queue.command("status")
@json_option
@pass_context
def queue_status_command(context: Context, as_json: bool) -> None:
    """Recipients queued, deferred, being sent, sent and failed."""
    emit(queue_status(context.app), as_json, queue_text)


def domain_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """A mistyped domain would match nothing and look like "nothing failed there"."""
    try:
        return normalize_domain(value) if value is not None else None
    except InvalidAddress as error:
        raise click.BadParameter(str(error)) from None


@queue.command("retry")
@click.option(
    "--domain", callback=domain_name, help="Only recipients at this domain (IDN allowed)."
)
@pass_context
def queue_retry(context: Context, domain: str | None) -> None:
    """Send failed deliveries again (once a provider's block is lifted)."""
    count = resend_failed(context.app, domain)
    click.echo(f"queued {count} recipients again")


@queue.command("reprocess")
@click.argument("message_id", metavar="ID", type=int)
@pass_context
def queue_reprocess(context: Context, message_id: int) -> None:
    """Process a failed incoming message again (once the cause is fixed)."""
    if not reprocess(context.app, message_id):
        fail(f"no failed message {message_id} (see listserv queue status)")
    click.echo(f"message {message_id} queued to be processed again")
