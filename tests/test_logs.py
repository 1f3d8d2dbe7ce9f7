"""aiosmtpd's and Alembic's INFO chatter: shown, as DEBUG, only when the log level is debug."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from listserv import logs


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in logs.CHATTY:
        logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.mark.parametrize("level", ["info", "debug"])
def test_library_chatter_only_at_debug(level: str, capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(level)
    logging.getLogger("mail.log").info("Available AUTH mechanisms: LOGIN(builtin)")
    logging.getLogger("mail.log").warning("a client misbehaved")
    logging.getLogger("listserv.intake").info("accepted 1")
    err = capsys.readouterr().err
    assert "a client misbehaved" in err and "accepted 1" in err
    if level == "debug":
        assert "DEBUG mail.log: Available AUTH mechanisms" in err
    else:
        assert "Available AUTH" not in err
        assert not logging.getLogger("mail.log").isEnabledFor(logging.INFO)
