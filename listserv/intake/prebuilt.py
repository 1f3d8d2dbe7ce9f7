"""aiosmtpd protocol objects for new connections, without redoing aiosmtpd's per-class work.

aiosmtpd's ``SMTP.__init__`` builds its tables of commands, AUTH mechanisms and handler hooks
at every connection, with ``inspect.getmembers`` and ``dir()`` over the protocol and the
handler: an eighth of intake's CPU with one message per connection. The tables depend only on
the class and the handler, so one protocol object is built the normal way at start and each
connection gets a copy of it, with its own stream reader and the methods bound to the copy.

The copy relies on what aiosmtpd's ``__init__`` sets, so it is made only for the versions it
was checked against (``tests/intake/test_prebuilt.py`` compares a copy with a new object);
any other version builds every protocol object the normal way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import MethodType
from typing import Any

import aiosmtpd
from aiosmtpd.smtp import SMTP, _AuthMechAttr

CHECKED_VERSIONS = ("1.4.6",)
# aiosmtpd's logger: its per-connection line about AUTH mechanisms is kept.
aiosmtpd_log = logging.getLogger("mail.log")


def factory(cls: type[SMTP], handler: Any, **options: Any) -> Callable[[], SMTP]:
    """A protocol factory for ``loop.create_server``: ``cls(handler, **options)`` for each
    connection, or a copy of one such object when the aiosmtpd version allows."""
    if aiosmtpd.__version__ not in CHECKED_VERSIONS:
        return lambda: cls(handler, **options)
    prototype = cls(handler, **options)
    mechanisms = " ".join(
        name + "(builtin)" if mechanism.is_builtin else name
        for name, mechanism in sorted(prototype._auth_methods.items())
    )
    return lambda: copy_of(prototype, mechanisms)


def copy_of(prototype: SMTP, mechanisms: str) -> SMTP:
    """A protocol object as ``SMTP.__init__`` would make it with the prototype's arguments."""
    protocol = type(prototype).__new__(type(prototype))
    protocol.__dict__.update(prototype.__dict__)
    # What a connection has of its own: its stream, and the methods bound to it.
    asyncio.StreamReaderProtocol.__init__(
        protocol,
        asyncio.StreamReader(loop=protocol.loop, limit=protocol.line_length_limit),
        client_connected_cb=protocol._cb_client_connected,
        loop=protocol.loop,
    )
    protocol._smtp_methods = {
        name: MethodType(method.__func__, protocol)
        for name, method in prototype._smtp_methods.items()
    }
    protocol._auth_methods = {
        name: _AuthMechAttr(MethodType(mechanism.method.__func__, protocol), True)
        if mechanism.is_builtin
        else mechanism
        for name, mechanism in prototype._auth_methods.items()
    }
    # A class attribute, which aiosmtpd's __init__ clears for each connection.
    protocol.command_size_limits.clear()
    aiosmtpd_log.info("Available AUTH mechanisms: %s", mechanisms)
    return protocol
