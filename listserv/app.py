"""The running server's shared parts: configuration, database sessions and templates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from listserv.auth.dkim import Signer, load_signer
from listserv.auth.resolver import Resolver
from listserv.config import Config
from listserv.mail.templates import Templates, templates_for
from listserv.store.db import make_engine, session_factory

# (app, session, outgoing id, {address: (SMTP code, reason)})
Refusals = Callable[["App", Session, int, dict[str, tuple[int, str]]], None]


@dataclass
class App:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    templates: Templates
    resolver: Resolver
    # Signs everything that leaves when [dkim] is configured.
    signer: Signer | None = None
    # Told of the recipients that refused a message at delivery, so they count like bounces;
    # set by the server (delivery does not know about bounces).
    on_refused: Refusals | None = None

    @property
    def domain(self) -> str:
        return self.config.server.domain


def make_app(config: Config, defer_to: Callable[[], bool] | None = None) -> App:
    """*defer_to*: in a worker process, whether the serve process's intake waits to write."""
    signer = load_signer(config)
    engine = make_engine(config.database_url, config.database.timeout, defer_to)
    sessions = session_factory(engine)
    override = config.server.template_dir
    templates = templates_for(str(config.resolve(override)) if override else "")
    return App(config, engine, sessions, templates, Resolver(config.dns), signer)
