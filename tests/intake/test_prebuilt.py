"""The protocol object a connection gets is a copy of one built at start: it must be what
aiosmtpd's own ``__init__`` makes, attribute by attribute, bound to itself."""

from __future__ import annotations

import asyncio
from types import MethodType
from typing import Any

import aiosmtpd
import pytest
from aiosmtpd.smtp import SMTP

from listserv.intake import journal, prebuilt, xforward
from listserv.intake.smtp import PerRecipientLMTP

OPTIONS = {"data_size_limit": 1000, "enable_SMTPUTF8": True, "hostname": "x.example"}


class Handler:
    relays = xforward.Relays([])

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        return responses

    async def handle_DATA(self, *args: Any) -> str:
        return "250 OK"


def assert_alike(copied: Any, made: Any, copy_owner: object, made_owner: object) -> None:
    """*copied* is to its protocol object what *made* is to its own."""
    if isinstance(made, MethodType):
        assert isinstance(copied, MethodType) and copied.__func__ is made.__func__
        if made.__self__ is made_owner:
            assert copied.__self__ is copy_owner
        else:
            assert copied.__self__ is made.__self__
    elif isinstance(made, dict):
        assert copied.keys() == made.keys()
        for key in made:
            assert_alike(copied[key], made[key], copy_owner, made_owner)
    elif isinstance(made, tuple):
        assert type(copied) is type(made) and len(copied) == len(made)
        for one, other in zip(copied, made, strict=True):
            assert_alike(one, other, copy_owner, made_owner)
    elif isinstance(made, (asyncio.StreamReader, asyncio.Future, asyncio.AbstractEventLoop)):
        assert type(copied) is type(made)
    elif made is None or isinstance(made, (str, int, float, bool)):
        assert copied == made
    else:  # the weak reference to the stream reader, the loop's waiters
        assert type(copied) is type(made)


@pytest.mark.parametrize("base", [SMTP, PerRecipientLMTP])
def test_a_copy_is_what_aiosmtpd_makes(base: type[SMTP]) -> None:
    asyncio.run(compare(journal.journaled(xforward.with_xforward(base))))


async def compare(cls: type[SMTP]) -> None:
    handler = Handler()
    make = prebuilt.factory(cls, handler, **OPTIONS)
    first, second, made = make(), make(), cls(handler, **OPTIONS)
    for copied in (first, second):
        assert type(copied) is cls
        assert vars(copied).keys() == vars(made).keys()
        for name, value in vars(made).items():
            assert_alike(vars(copied)[name], value, copied, made)
    # Nothing of a connection is shared with another.
    assert first._stream_reader is not second._stream_reader
    assert first._closed is not second._closed
    assert first._smtp_methods["DATA"].__self__ is first


def test_the_aiosmtpd_version_is_one_the_copy_was_checked_with() -> None:
    # Another version: check test_a_copy_is_what_aiosmtpd_makes passes, then add it.
    assert aiosmtpd.__version__ in prebuilt.CHECKED_VERSIONS
