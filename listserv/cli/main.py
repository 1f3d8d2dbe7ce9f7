"""The ``listserv`` command line: the top group, ``serve``, and one group per module."""

from __future__ import annotations

import click

from listserv import logs
from listserv.cli.aliases import aliases
from listserv.cli.api_key import api_key
from listserv.cli.archive import archive
from listserv.cli.base import CONFIG_HELP, Context, Group, fail, pass_context
from listserv.cli.db import db
from listserv.cli.digest import digest
from listserv.cli.dkim import dkim
from listserv.cli.held import held
from listserv.cli.inject import inject
from listserv.cli.lists import lists
from listserv.cli.members import members
from listserv.cli.queue import queue
from listserv.config import find_config, load_config
from listserv.server import prepare, run_server
from listserv.web.app import run_web


@click.group(cls=Group)
@click.option("--config", "config_path", metavar="PATH", help=CONFIG_HELP)
@click.version_option(package_name="listserv", prog_name="listserv", message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """listserv: a mailing-list server for regional topic lists."""
    ctx.obj = Context(config_path)


@main.command()
@click.option(
    "--log-format",
    type=click.Choice(logs.FORMATS),
    default="text",
    help="text, or json: one JSON object per line for log collectors.",
)
@pass_context
def serve(context: Context, log_format: logs.LogFormat) -> None:
    """Run intake, delivery and the schedulers until SIGTERM."""
    config = load_config(find_config(context.config_path))
    logs.configure(config.server.log_level, log_format)
    run_server(config)


@main.command("web")
@click.option(
    "--log-format",
    type=click.Choice(logs.FORMATS),
    default="text",
    help="text, or json: one JSON object per line for log collectors.",
)
@pass_context
def web_command(context: Context, log_format: logs.LogFormat) -> None:
    """Run the portal alone (more processes, on more hosts, against the same database)."""
    config = load_config(find_config(context.config_path))
    if config.web is None:
        fail("web: missing section: the portal needs a [web] section")
    logs.configure(config.server.log_level, log_format)
    run_web(prepare(config))


for command in (db, lists, members, queue, inject, dkim, aliases, held, digest, archive):
    main.add_command(command)
main.add_command(api_key)
