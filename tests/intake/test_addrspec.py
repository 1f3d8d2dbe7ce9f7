"""The plain-address reading of MAIL FROM and RCPT TO gives what aiosmtpd's own gives, for
any argument: plain addresses, their near misses, and anything else."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import example, given, settings
from hypothesis import strategies as st

from listserv.intake.addrspec import PlainAddresses


class Reader:
    """What PlainAddresses falls back to: aiosmtpd's reading."""

    local_part_limit = 0
    _getaddr = SMTP._getaddr


class PlainReader(PlainAddresses, Reader):
    pass


# Characters that matter to an address's syntax, with a few letters, digits and non-ASCII.
PIECES = [*'ab1.@<>"\\()[]:,;-+=!#%{}~ \t\r\n\x0b\x85\xa0é', "IPv6:", " SIZE=10", "<a@b>"]
arguments = st.lists(st.sampled_from(PIECES), max_size=16).map("".join)
plain_like = st.tuples(arguments, arguments, arguments).map(lambda p: f"<{p[0]}@{p[1]}>{p[2]}")


def outcome(read: Callable[[str], object], arg: str) -> object:
    """What reading *arg* gives, or the type of what it raises (aiosmtpd fails on "<")."""
    try:
        return read(arg)
    except Exception as error:
        return type(error)


def same(arg: str, limit: int = 0) -> None:
    reader = PlainReader()
    reader.local_part_limit = limit
    aiosmtpd = outcome(lambda a: SMTP._getaddr(reader, a), arg)  # type: ignore[arg-type]
    assert outcome(reader._getaddr, arg) == aiosmtpd


@settings(max_examples=400, deadline=None)
@given(st.one_of(arguments, plain_like, st.text(max_size=40)))
@example("<a@b>  SIZE=10")
@example("<a@b>(comment) SIZE=10")
@example("<a@b> (comment)")
@example("<a@b>\tSIZE=10")
@example("<a@b>\x85")
def test_the_same_as_aiosmtpd_for_any_argument(arg: str) -> None:
    same(arg)


@pytest.mark.parametrize(
    "arg",
    [
        "",
        "<>",
        "<",
        "<ann@ngo.example>",
        "<ann@ngo.example> SIZE=2000 BODY=8BITMIME",
        "<a.b+c@x-y.example>x",
        "<a@b.>",
        "<.a@b>",
        "<a..b@c>",
        "<a@[192.0.2.1]>",
        '<"a b"@c>',
        "<@relay:a@b>",
        "ann@ngo.example",
        " <ann@ngo.example>",
    ],
)
def test_the_same_as_aiosmtpd_for_known_forms(arg: str) -> None:
    same(arg)
    same(arg, limit=2)
