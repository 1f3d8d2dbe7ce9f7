"""``listserv dkim``: the signing key."""

from __future__ import annotations

import click

from listserv.auth.dkim import dns_record, generate_key, signing_domain
from listserv.cli.base import Context, Group, fail, pass_context
from listserv.config import find_config, load_config


@click.group(cls=Group)
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
