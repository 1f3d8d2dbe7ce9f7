"""``listserv dkim``: the signing key.

``keygen`` works before the ``[dkim]`` section exists, so the key can be made and its record
published before signing is enabled (a section naming a missing key stops every command).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import click

from listserv.auth.dkim import dns_record, generate_key, signing_domain
from listserv.cli.base import Context, Group, fail, pass_context
from listserv.config import Config, ConfigError, DkimConfig, find_config, load_config

KEY_SIZES = ("1024", "2048", "3072", "4096")


@click.group(cls=Group)
def dkim() -> None:
    """DKIM signing key."""


def section(config: Config, key: Path) -> str:
    """The ``[dkim]`` lines that enable signing with *key*."""
    assert config.dkim is not None
    folder = config.path.parent.resolve()
    shown = key.relative_to(folder) if key.is_relative_to(folder) else key
    lines = ["[dkim]", f'selector = "{config.dkim.selector}"', f'private_key = "{shown}"']
    if config.dkim.domain:
        lines.append(f'domain = "{config.dkim.domain}"')
    return "\n".join(lines)


@dkim.command("keygen")
@click.option(
    "--selector",
    help="The DNS selector (s=) to publish the key under  [default: [dkim] selector]",
)
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Key file to write  [default: [dkim] private_key]",
)
@click.option(
    "--bits",
    type=click.Choice(KEY_SIZES),
    default="2048",
    show_default=True,
    help="RSA key size.",
)
@click.option("--force", is_flag=True, help="Replace an existing key.")
@pass_context
def dkim_keygen(
    context: Context, selector: str | None, key: Path | None, bits: str, force: bool
) -> None:
    """Write a new signing key and print the DNS record to publish."""
    config = load_config(find_config(context.config_path))
    if config.dkim is None and not (selector and key):
        fail("no [dkim] section in the configuration: give --selector and --key")
    current = config.dkim
    try:
        chosen = DkimConfig(
            selector=selector or (current.selector if current else ""),
            private_key=os.fspath(key.resolve())
            if key
            else (current.private_key if current else ""),
            domain=current.domain if current else "",
        )
    except ConfigError as error:
        fail(str(error).replace("dkim.selector", "--selector"))
    config = dataclasses.replace(config, dkim=chosen)
    path = config.resolve(chosen.private_key)
    if path.exists() and not force:
        fail(f"{path} exists; use --force to replace it")
    public = generate_key(path, int(bits))
    click.echo(f"wrote {path}; publish this TXT record:")
    click.echo(dns_record(chosen.selector, signing_domain(config), public))
    if chosen != current:
        click.echo(f"then, to sign with it, put in {config.path}:\n{section(config, path)}")
