"""The delivery client's pure parts: the DATA payload and the reading of SMTP replies."""

from __future__ import annotations

import asyncio

import pytest

from listserv.delivery.smtp_client import ReplyReader
from listserv.delivery.smtp_terms import Result, SmtpError, data_payload


def test_payload_is_dot_stuffed_with_crlf_line_ends() -> None:
    raw = b"Subject: x\n\n.hidden\r\nline\n..two\n."
    assert data_payload(raw) == b"Subject: x\r\n\r\n..hidden\r\nline\r\n...two\r\n..\r\n.\r\n"
    assert data_payload(b".a\r\nb\r\n.c") == b"..a\r\nb\r\n..c\r\n.\r\n"


def test_payload_keeps_8bit_bytes() -> None:
    raw = "Subject: привет\r\n\r\nСәлем\r\n".encode()
    assert data_payload(raw) == raw + b".\r\n"


def read_replies(chunks: list[bytes], count: int) -> list[tuple[int, str]]:
    async def run() -> list[tuple[int, str]]:
        reader = ReplyReader(timeout=5)
        for chunk in chunks:
            reader.data_received(chunk)
        reader.eof_received()
        return await reader.read(count)

    return asyncio.run(run())


def test_replies_split_across_reads_and_multiline() -> None:
    chunks = [b"250-smtp.example\r\n250-PIPE", b"LINING\r\n250 8BITMIME\r\n25", b"0 2.1.0 Ok\r\n"]
    assert read_replies(chunks, 2) == [
        (250, "smtp.example\nPIPELINING\n8BITMIME"),
        (250, "2.1.0 Ok"),
    ]


def test_replies_kept_when_the_connection_closes_half_way() -> None:
    async def run() -> list[tuple[int, str]]:
        reader = ReplyReader(timeout=5)
        reader.data_received(b"250 Ok\r\n550 5.1.1 No such user\r\n")
        reader.eof_received()
        replies: list[tuple[int, str]] = []
        with pytest.raises(SmtpError):
            await reader.read(4, replies)
        return replies

    assert asyncio.run(run()) == [(250, "Ok"), (550, "5.1.1 No such user")]


def test_undecided_recipients_are_those_without_an_answer() -> None:
    result = Result().fail(["a@x.example"], 550, "no").fail(["b@x.example"], 450, "later")
    result.accepted.append("d@x.example")
    everyone = ["a@x.example", "b@x.example", "c@x.example", "d@x.example"]
    assert result.undecided(everyone) == ["c@x.example"]
    assert result.permanent == {"a@x.example": (550, "no")}
    assert result.temporary == {"b@x.example": (450, "later")}
