"""Logging for ``listserv serve``: one line per event an operator cares about (a message
accepted or refused at intake, routed, delivered, deferred, refused by the smarthost), as
text or, with ``--log-format json``, one JSON object per line for log collectors.

aiosmtpd logs every SMTP command, ``Available AUTH mechanisms`` and ``connection lost`` at
INFO on its ``mail.log`` logger, and Alembic its steps at every start; those are moved to
DEBUG, so they show only with ``log_level = "debug"``.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")
# Libraries whose INFO lines are chatter to an operator: aiosmtpd's per-command log, and
# Alembic's lines at every start (which migrations run is in ``listserv db upgrade``'s output).
CHATTY = ("mail.log", "alembic")


class DemoteToDebug(logging.Filter):
    """Turns a chatty library's INFO lines into DEBUG ones, dropped unless debug is on. A
    handler's filter, so it sees the records of the libraries' child loggers too."""

    def filter(self, record: logging.LogRecord) -> bool:
        chatty = any(record.name == n or record.name.startswith(n + ".") for n in CHATTY)
        if chatty and record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def formatter(log_format: LogFormat) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    return logging.Formatter(TEXT_FORMAT)


def configure(level: str, log_format: LogFormat = "text") -> None:
    """Log to stderr at *level* in *log_format*, replacing any handler set before."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    handler.addFilter(DemoteToDebug())
    # Their INFO lines would be dropped by the filter anyway unless debug is on; not made at
    # all, they no longer cost intake about ten records a connection.
    debug = level.lower() == "debug"
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.WARNING)
