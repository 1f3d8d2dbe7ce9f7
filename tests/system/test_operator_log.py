"""The log of ``listserv serve`` as an operator reads it: the real daemon as a subprocess, its
stderr read line by line, the real sink, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import smtplib
from collections.abc import Callable
from pathlib import Path

import pytest
from support import DOMAIN, ServeProcess, Sink, cli, list_table, make_message

from listserv.mail.codec import to_bytes

MEMBERS = ["m1@x.example", "m2@x.example", "m3@x.example"]
POSTER = MEMBERS[0]


@pytest.fixture
def serve_process(config_file: Callable[..., Path]):
    """Start ``listserv serve`` on a list of three members: ``serve_process(*options)``."""
    processes: list[ServeProcess] = []

    def start(*options: str) -> ServeProcess:
        config = config_file(lists=[list_table("test")], server={"log_level": "info"})
        assert cli(config, "members", "add", "test", "--no-welcome", *MEMBERS).exit_code == 0
        process = ServeProcess(config, *options)
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.stop()


def intake_port(process: ServeProcess) -> int:
    (line,) = [line for line in process.log if "listening on" in line]
    match = re.search(r"listening on 127\.0\.0\.1:(\d+) \(smtp\)", line)
    assert match, line
    return int(match.group(1))


def post(process: ServeProcess, subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", intake_port(process), timeout=15) as client:
        message = to_bytes(make_message(POSTER, subject=subject))
        client.sendmail(POSTER, [f"test@{DOMAIN}"], message)


def test_one_post_to_three_members_logs_intake_routing_and_one_delivery(
    serve_process, sink: Sink
) -> None:
    process = serve_process()
    post(process, "hello")
    sink.wait_for_recipients(set(MEMBERS))
    process.wait_for_log("delivered outgoing")
    with (
        smtplib.SMTP("127.0.0.1", intake_port(process), timeout=15) as client,
        pytest.raises(smtplib.SMTPRecipientsRefused),
    ):
        client.sendmail(POSTER, [f"nobody@{DOMAIN}"], b"Subject: x\r\n\r\nx\r\n")
    process.wait_for_log("refused RCPT")
    log = "".join(process.log)
    assert re.search(
        rf"INFO listserv.intake: accepted \d+ from <{POSTER}> for test@{DOMAIN}, "
        r"client unknown\[127\.0\.0\.1\]",
        log,
    ), log
    assert re.search(r"INFO listserv.intake.router: message \d+: ", log), log
    delivered = [line for line in process.log if "delivered outgoing" in line]
    assert len(delivered) == 1, log
    assert re.search(r"batch \d+ \(list test\): 3 recipients, 250 OK", delivered[0])
    refused = [line for line in process.log if "refused RCPT" in line]
    assert len(refused) == 1 and f"<nobody@{DOMAIN}>" in refused[0]
    assert "550 5.1.1" in refused[0]
    # aiosmtpd's line per command, AUTH mechanisms and "connection lost" are DEBUG chatter.
    assert "mail.log" not in log and "connection lost" not in log.lower()


def test_deferrals_and_refusals_at_the_smarthost_are_logged(serve_process, sink: Sink) -> None:
    sink.rcpt_reply[MEMBERS[1]] = "450 4.2.1 Mailbox busy, try later"
    sink.rcpt_reply[MEMBERS[2]] = "550 5.1.1 No such user here"
    process = serve_process()
    post(process, "partly")
    process.wait_for_log("refused outgoing")
    process.wait_for_log("deferred outgoing")
    deferred = next(line for line in process.log if "deferred outgoing" in line)
    assert re.search(
        r"1 recipients, 450 4.2.1 Mailbox busy, try later; next attempt \d{4}-\d\d-\d\dT", deferred
    ), deferred
    refused = next(line for line in process.log if "refused outgoing" in line)
    assert f"<{MEMBERS[2]}> 550 5.1.1 No such user here" in refused
    delivered = next(line for line in process.log if "delivered outgoing" in line)
    assert "(list test): 1 recipients, 250 OK" in delivered


def test_json_log_format(serve_process, sink: Sink) -> None:
    process = serve_process("--log-format", "json")
    post(process, "as json")
    sink.wait_for_recipients(set(MEMBERS))
    process.wait_for_log("delivered outgoing")
    records = [json.loads(line) for line in process.log]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    (start,) = [r for r in records if r["message"].startswith("listening on 127.0.0.1:")]
    assert start["level"] == "INFO" and start["logger"] == "listserv.server"
    assert any(r["logger"] == "listserv.delivery" for r in records)
