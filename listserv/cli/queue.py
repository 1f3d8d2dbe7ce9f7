"""``listserv queue``: the outbound queue."""

from __future__ import annotations

import click

from listserv.cli.base import Context, Group, emit, json_option, pass_context
from listserv.delivery.queue_admin import queue_counts, resend_failed
from listserv.intake.smtp import inbox_backlog
from listserv.mail.addresses import InvalidAddress, normalize_domain


@click.group(cls=Group)
def queue() -> None:
    """The outbound queue."""


@queue.command("status")
@json_option
@pass_context
def queue_status(context: Context, as_json: bool) -> None:
    """Recipients queued, deferred, being sent, sent and failed."""
    counts = queue_counts(context.app)
    counts["inbox"] = inbox_backlog(context.app)
    emit(counts, as_json, lambda c: "\n".join(f"{k}: {v}" for k, v in c.items()))


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
