"""What every command shares: the ``--config`` plumbing, the application it opens, one-line
errors, and printing as text or JSON.

Every command exits 0 on success and 1 with a one-line reason on any error a user can make
(unknown list, invalid address, broken config, unreachable database, a mistyped argument).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, NoReturn

import click
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.config import ConfigError, find_config, load_config
from listserv.mail.addresses import InvalidAddress
from listserv.server import prepare
from listserv.store.db import DatabaseError, describe, transaction
from listserv.store.lists import UnknownList

CONFIG_HELP = "Configuration file (default: $LISTSERV_CONFIG, else ./config.toml)."


class OneLineError(click.ClickException):
    """An error shown as one line: ``listserv: <message>``."""

    def show(self, file: Any = None) -> None:
        click.echo(f"listserv: {self.format_message()}", err=True)


def fail(message: str) -> NoReturn:
    raise OneLineError(message)


# Click shows help for a bare group (``listserv held``); that is not a mistake to report.
SHOWS_HELP: tuple[type[Exception], ...] = tuple(
    getattr(click.exceptions, name)
    for name in ("NoArgsIsHelpError",)
    if hasattr(click.exceptions, name)
)


def usage_failure(error: click.UsageError) -> OneLineError:
    """Click's usage error (usage, hint and message on three lines, exit 2) as one line."""
    words = []
    ctx = error.ctx
    while ctx is not None and ctx.parent is not None:  # the top's name may be "python -m …"
        words.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    command = " ".join(["listserv", *words])
    return OneLineError(f"error: {error.format_message().rstrip('.')} (see '{command} --help')")


class Context:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._app: App | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            self._app = prepare(load_config(find_config(self.config_path)))
        return self._app

    @contextmanager
    def session(self) -> Iterator[Session]:
        with transaction(self.app.sessions) as session:
            yield session


pass_context = click.make_pass_decorator(Context)


def remember_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.find_object(Context).config_path = value  # type: ignore[union-attr]


class ConfigCommand(click.Command):
    """A command that also takes ``--config`` after its name (``listserv serve --config …``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(
            click.Option(
                ["--config"],
                metavar="PATH",
                expose_value=False,
                is_eager=True,
                callback=remember_config,
                help=CONFIG_HELP,
            )
        )


class Group(click.Group):
    """Turns the errors a user can cause into one line and exit status 1."""

    command_class = ConfigCommand

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        # A subcommand's arguments are parsed within its group's invoke; only the top group's
        # own are parsed here.
        try:
            return super().make_context(*args, **kwargs)
        except SHOWS_HELP:
            raise
        except click.UsageError as error:
            raise usage_failure(error) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SHOWS_HELP:
            raise
        except click.UsageError as error:
            raise usage_failure(error) from None
        except (ConfigError, DatabaseError, UnknownList, InvalidAddress) as error:
            raise OneLineError(str(error)) from None
        except SQLAlchemyError as error:
            raise OneLineError(describe(error)) from None


def emit(data: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    """*data* as JSON or as *text* makes it; an empty listing prints nothing (not a blank
    line)."""
    shown = json.dumps(data, ensure_ascii=False, indent=2, default=str) if as_json else text(data)
    if shown:
        click.echo(shown)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def plain(value: Any) -> str:
    """A setting as a person reads it (and as it is written in config.toml)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None or value == "":
        return "(none)"
    if isinstance(value, list | tuple | dict):
        return ", ".join(plain(item) for item in value) or "(none)"
    return str(value)


def as_text(data: dict[str, Any], indent: str = "") -> str:
    """``key: value`` lines, a nested table indented under its key."""
    lines = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            lines += [f"{indent}{key}:", as_text(value, indent + "  ")]
        else:
            lines.append(f"{indent}{key}: {plain(value)}")
    return "\n".join(lines)


def when(iso: str) -> str:
    """``2026-12-02T03:50:12+00:00`` → ``2026-12-02 03:50`` (times are UTC)."""
    return iso[:16].replace("T", " ")


def columns(rows: list[list[str]]) -> str:
    """Rows as aligned columns, two spaces apart; the last column is not padded."""
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


# What a long-running package function reports as it goes: (done, total).
Progress = Callable[[int, int], None]


@contextmanager
def progress_bar(label: str) -> Iterator[Progress | None]:
    """A progress callback drawing a bar when stdout is a terminal; None (quiet) in a pipe."""
    if not sys.stdout.isatty():
        yield None
        return
    with ExitStack() as stack:
        bars: list[Any] = []

        def update(done: int, total: int) -> None:
            if not bars:
                bars.append(stack.enter_context(click.progressbar(length=total, label=label)))
            bars[0].update(done - bars[0].pos)

        yield update
