"""The ``listserv`` command line: the top group, ``serve``, and one group per module."""

from __future__ import annotations

import logging

import click

from listserv.cli.aliases import aliases
from listserv.cli.api_key import api_key
from listserv.cli.base import CONFIG_HELP, Context, Group, pass_context
from listserv.cli.db import db
from listserv.cli.digest import digest
from listserv.cli.dkim import dkim
from listserv.cli.held import held
from listserv.cli.inject import inject
from listserv.cli.lists import lists
from listserv.cli.members import members
from listserv.cli.queue import queue
from listserv.config import find_config, load_config
from listserv.server import run_server


@click.group(cls=Group)
@click.option("--config", "config_path", metavar="PATH", help=CONFIG_HELP)
@click.version_option(package_name="listserv", prog_name="listserv", message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """listserv: a mailing-list server for regional topic lists."""
    ctx.obj = Context(config_path)


@main.command()
@pass_context
def serve(context: Context) -> None:
    """Run intake, delivery and the schedulers until SIGTERM."""
    config = load_config(find_config(context.config_path))
    logging.basicConfig(
        level=config.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    run_server(config)


for command in (db, lists, members, queue, inject, dkim, aliases, held, digest):
    main.add_command(command)
main.add_command(api_key)
