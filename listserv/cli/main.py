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
from listserv.config import Config, find_config, load_config
from listserv.server import prepare, run_server
from listserv.web.app import run_web


@click.group(cls=Group)
@click.option("--config", "config_path", metavar="PATH", help=CONFIG_HELP)
@click.version_option(package_name="listserv", prog_name="listserv", message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """listserv: a mailing-list server for regional topic lists."""
    ctx.obj = Context(config_path)


log_format_option = click.option(
    "--log-format",
    type=click.Choice(logs.FORMATS),
    default="text",
    help="text, or json: one JSON object per line for log collectors.",
)


def logged_config(context: Context, log_format: logs.LogFormat) -> Config:
    """The configuration, with logging set up as it asks, for a long-running command."""
    config = load_config(find_config(context.config_path))
    logs.configure(config.server.log_level, log_format)
    return config


@main.command()
@log_format_option
@pass_context
def serve(context: Context, log_format: logs.LogFormat) -> None:
    """Run intake, delivery and the schedulers until SIGTERM."""
    run_server(logged_config(context, log_format), log_format)


@main.command("web")
@log_format_option
@pass_context
def web_command(context: Context, log_format: logs.LogFormat) -> None:
    """Run the portal alone (more processes, on more hosts, against the same database)."""
    config = logged_config(context, log_format)
    if config.web is None:
        fail("web: missing section: the portal needs a [web] section")
    run_web(prepare(config))


for command in (db, lists, members, queue, inject, dkim, aliases, held, digest, archive):
    main.add_command(command)
main.add_command(api_key)
