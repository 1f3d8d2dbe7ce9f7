"""Personalized copies over one pipelined connection (``SmtpConnection.send_each``), against a
real SMTP server: every copy in its own transaction, and what each recipient was told kept
whatever goes wrong on the way."""

from __future__ import annotations

import asyncio
import socket

import pytest

from listserv.delivery.smtp_client import SmtpConnection
from listserv.delivery.smtp_terms import Result, SmtpError, data_payload
from tests.support import Sink


def copies(count: int) -> list[tuple[str, str, bytes]]:
    return [
        (
            f"list-bounces+m{i}=x.example@lists.example",
            f"m{i}@x.example",
            data_payload(b"Subject: copy %d\r\n\r\nfor m%d\r\n" % (i, i)),
        )
        for i in range(count)
    ]


def send_each(sink: Sink, batch: list[tuple[str, str, bytes]], timeout: float = 10) -> Result:
    async def run() -> Result:
        host, port = sink.address.split(":")
        connection = await SmtpConnection.connect(host, int(port), timeout, "lists.example")
        assert connection.pipelining
        result = Result()
        try:
            await connection.send_each(batch, result)
        finally:
            connection.abort()
        return result

    return asyncio.run(run())


def test_every_copy_is_its_own_transaction(sink: Sink) -> None:
    batch = copies(20)
    before = sink.connections  # the sink's own readiness probe counts too
    result = send_each(sink, batch)
    assert result.accepted == [rcpt for _, rcpt, _ in batch]
    got = {m.rcpt_tos[0]: m for m in sink.received}
    for mail_from, rcpt, _ in batch:
        assert got[rcpt].mail_from == mail_from
        assert got[rcpt].rcpt_tos == [rcpt]
        assert got[rcpt].raw.endswith(b"for " + rcpt.split("@")[0].encode() + b"\r\n")
    assert sink.connections == before + 1


def test_refused_recipients_are_recorded_and_the_rest_still_sent(sink: Sink) -> None:
    sink.rcpt_reply = {"m3@x.example": "550 5.1.1 No such user", "m7@x.example": "450 Later"}
    batch = copies(10)
    result = send_each(sink, batch)
    assert result.permanent == {"m3@x.example": (550, "5.1.1 No such user")}
    assert result.temporary == {"m7@x.example": (450, "Later")}
    assert result.accepted == [r for _, r, _ in batch if r not in {"m3@x.example", "m7@x.example"}]
    assert sorted(m.rcpt_tos[0] for m in sink.received) == sorted(result.accepted)


def test_refused_content_fails_each_copy(sink: Sink) -> None:
    sink.data_reply = "554 5.7.1 Not today"
    result = send_each(sink, copies(3))
    assert result.accepted == []
    assert result.permanent == {
        f"m{i}@x.example": (554, "end of data: 5.7.1 Not today") for i in range(3)
    }


def test_a_dropped_connection_keeps_the_answers_given_before_it(sink: Sink) -> None:
    sink.drop_at_data = True  # the first copy's content is received, then the line drops
    batch = copies(5)

    async def run() -> tuple[Result, BaseException]:
        host, port = sink.address.split(":")
        connection = await SmtpConnection.connect(host, int(port), 10, "lists.example")
        result = Result()
        with pytest.raises(SmtpError) as raised:
            await connection.send_each(batch, result)
        connection.abort()
        return result, raised.value

    result, error = asyncio.run(run())
    assert error.code == 451
    assert result.accepted == []
    # Nobody was refused: every recipient is undecided, so the caller retries them all.
    assert result.undecided([r for _, r, _ in batch]) == [r for _, r, _ in batch]


def test_a_silent_server_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        async def run() -> None:
            connect = SmtpConnection.connect("127.0.0.1", port, 0.3, "lists.example")
            task = asyncio.ensure_future(connect)
            accepted, _ = await asyncio.to_thread(listener.accept)
            with accepted:
                accepted.sendall(b"220 hello\r\n")  # then nothing more: EHLO is never answered
                with pytest.raises(TimeoutError):
                    await task

        asyncio.run(run())


def test_a_server_that_stops_answering_mid_run_times_out() -> None:
    """The pump's timer: copies answered in time go through, one left without an answer
    times out, and stays undecided (retried) rather than lost or counted."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        batch = copies(3)

        def serve() -> None:
            accepted, _ = listener.accept()
            with accepted, accepted.makefile("rb") as lines:
                accepted.sendall(b"220 hello\r\n")
                lines.readline()  # EHLO
                accepted.sendall(b"250-x\r\n250 PIPELINING\r\n")
                for _ in range(3):  # MAIL, RCPT, DATA of the first copy
                    lines.readline()
                accepted.sendall(b"250 ok\r\n250 ok\r\n354 go\r\n")
                while lines.readline() != b".\r\n":  # its content
                    pass
                for _ in range(3):  # the second copy's MAIL, RCPT, DATA
                    lines.readline()
                accepted.sendall(b"250 queued\r\n250 ok\r\n250 ok\r\n354 go\r\n")
                while lines.readline() != b".\r\n":  # the second content: never answered
                    pass
                lines.read()  # until the client gives up and closes

        async def run() -> Result:
            server = asyncio.ensure_future(asyncio.to_thread(serve))
            connection = await SmtpConnection.connect("127.0.0.1", port, 0.5, "lists.example")
            result = Result()
            with pytest.raises(TimeoutError):
                await connection.send_each(batch, result)
            connection.abort()
            await server
            return result

        result = asyncio.run(run())
        assert result.accepted == ["m0@x.example"]
        assert result.undecided([r for _, r, _ in batch]) == ["m1@x.example", "m2@x.example"]
