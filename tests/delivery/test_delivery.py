"""Delivery to the smarthost: batching, pipelining, refusals, retries and dropped connections,
against the real aiosmtpd sink on both databases."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from support import DOMAIN, RunningServer, Sink, cli, make_message

POSTER = "poster@x.example"


def members(count: int, domain: str = "m.example") -> list[str]:
    return [f"member{i}@{domain}" for i in range(count)]


def subscribe(server: RunningServer, *addresses: str) -> None:
    result = cli(server.config_path, "members", "add", "--no-welcome", "test", *addresses)
    assert result.exit_code == 0, result.output


def post(server: RunningServer, subject: str = "Hello") -> None:
    server.send(POSTER, f"test@{DOMAIN}", make_message(POSTER, subject=subject))


def queue_status(server: RunningServer) -> dict[str, int]:
    result = cli(server.config_path, "queue", "status", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def delivered(sink: Sink) -> Counter[str]:
    """How many messages each address got."""
    return Counter(r.lower() for m in sink.received for r in m.rcpt_tos)


def test_batches_obey_max_recipients(start_server, sink: Sink) -> None:
    server = start_server(delivery={"max_recipients": 10})
    everyone = {POSTER, *members(24)}
    subscribe(server, *everyone)
    post(server)
    got = sink.wait_for_recipients(everyone)
    assert sorted(len(m.rcpt_tos) for m in got) == [5, 10, 10]
    assert delivered(sink) == Counter({a: 1 for a in everyone})


def test_pipelining_used_when_offered(start_server, sink: Sink) -> None:
    server = start_server(delivery={"connections": 1})
    everyone = {POSTER, *members(59)}
    subscribe(server, *everyone)
    post(server)
    sink.wait_for_recipients(everyone)
    # 63 commands and the message; one at a time they would take 60+ reads at the sink.
    assert sink.reads < 15


def settle(server: RunningServer, sink: Sink, *leaving: str) -> None:
    """Unsubscribe *leaving*, post again and wait for that post: with one connection, the
    outcome of everything sent before it is recorded by then."""
    if leaving:
        cli(server.config_path, "members", "remove", "test", *leaving)
    count = len(sink.received)
    post(server, "settle")
    sink.wait_for(lambda got: len(got) > count)


@pytest.mark.parametrize(
    ("pipelining", "reply", "delivery"),
    [
        (True, "550 5.1.1 No such user", {}),
        (False, "550 5.1.1 No such user", {}),
        (True, "451 4.3.0 Try later", {"give_up_after": 0.0}),
    ],
    ids=["5xx", "5xx-unpipelined", "4xx-given-up"],
)
def test_refused_rcpt_is_recorded_and_does_not_fail_its_batch(
    start_server, sink: Sink, pipelining: bool, reply: str, delivery: dict
) -> None:
    sink.pipelining = pipelining
    sink.rcpt_reply["gone@y.example"] = reply
    server = start_server(delivery={"connections": 1, **delivery})
    subscribe(server, POSTER, "gone@y.example", "b@z.example")
    post(server)
    got = sink.wait_for_recipients({POSTER, "b@z.example"})
    assert [sorted(m.rcpt_tos) for m in got] == [["b@z.example", POSTER]]
    settle(server, sink, "gone@y.example")
    status = queue_status(server)
    assert status["failed"] == 1 and status["deferred"] == 0
    assert sink.rcpt_log.count("gone@y.example") == 1


def test_temporary_failure_is_retried_then_delivered(start_server, sink: Sink) -> None:
    sink.rcpt_reply["busy@y.example"] = "450 4.2.1 Mailbox busy, try later"
    server = start_server()
    subscribe(server, POSTER, "busy@y.example")
    post(server)
    sink.wait_for_recipients({POSTER})
    sink.wait_until(lambda s: s.rcpt_log.count("busy@y.example") >= 2)
    del sink.rcpt_reply["busy@y.example"]
    sink.wait_for_recipients({"busy@y.example"})
    assert delivered(sink) == Counter({POSTER: 1, "busy@y.example": 1})


@pytest.mark.parametrize("dropped_at", ["rcpt", "data"])
def test_dropped_connection_retries_exactly_the_unaccepted(
    start_server, sink: Sink, dropped_at: str
) -> None:
    everyone = [POSTER, *members(11)]
    sink.rcpt_reply[everyone[2]] = "550 5.1.1 No such user"
    if dropped_at == "rcpt":
        sink.drop_after_rcpts = 5
    else:
        sink.drop_at_data = True
    server = start_server(delivery={"connections": 1})
    subscribe(server, *everyone)
    post(server)
    wanted = set(everyone) - {everyone[2]}
    sink.wait_for_recipients(wanted)
    assert sink.connections >= 2
    assert delivered(sink) == Counter({a: 1 for a in wanted})
    # The refused address was answered before the drop and is not tried again.
    assert sink.rcpt_log.count(everyone[2]) == 1


def test_queue_retry_resends_only_to_the_domain(start_server, sink: Sink) -> None:
    sink.rcpt_reply["a@blocked.example"] = "554 5.7.1 Blocked by policy"
    sink.rcpt_reply["b@other.example"] = "550 5.1.1 No such user"
    server = start_server(delivery={"connections": 1})
    subscribe(server, POSTER, "a@blocked.example", "b@other.example")
    post(server, "first")
    sink.wait_for_recipients({POSTER})
    settle(server, sink, "a@blocked.example", "b@other.example")
    assert queue_status(server)["failed"] == 2
    sink.rcpt_reply.clear()
    result = cli(server.config_path, "queue", "retry", "--domain", "blocked.example")
    assert result.exit_code == 0, result.output
    assert "queued 1 recipients again" in result.output
    got = sink.wait_for_recipients({"a@blocked.example"})
    assert got[-1].message["Subject"] == "[test] first"
    assert queue_status(server)["failed"] == 1
    assert sink.messages_to("b@other.example") == []


def test_nomail_members_get_nothing_and_the_poster_gets_a_copy(start_server, sink: Sink) -> None:
    server = start_server(delivery={"connections": 1})
    subscribe(server, POSTER, "quiet@y.example", "b@z.example")
    result = cli(
        server.config_path, "members", "set", "test", "quiet@y.example", "--delivery", "nomail"
    )
    assert result.exit_code == 0, result.output
    post(server, "first")
    sink.wait_for_recipients({POSTER, "b@z.example"})
    settle(server, sink)
    assert sink.messages_to("quiet@y.example") == []
    assert delivered(sink)[POSTER] == 2
