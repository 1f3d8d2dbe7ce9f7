"""What every command shares: the ``--config`` plumbing, the application it opens, one-line
errors, and printing as text or JSON.

Every command exits 0 on success and 1 with a one-line reason on any error a user can make
(unknown list, invalid address, broken config, unreachable database).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


class Failure(click.ClickException):
    """An error shown as one line: ``listserv: <message>``."""

    def show(self, file: Any = None) -> None:
        click.echo(f"listserv: {self.format_message()}", err=True)


def fail(message: str) -> NoReturn:
    raise Failure(message)


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

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigError, DatabaseError, UnknownList, InvalidAddress) as error:
            raise Failure(str(error)) from None
        except SQLAlchemyError as error:
            raise Failure(describe(error)) from None


def emit(data: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    click.echo(
        json.dumps(data, ensure_ascii=False, indent=2, default=str) if as_json else text(data)
    )


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
