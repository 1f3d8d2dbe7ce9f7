"""Two ``serve`` processes get the same moderator's reply at the same moment: the post is
distributed once. On SQLite ``FOR UPDATE`` does nothing, so the write lock must be taken
before the token is read. Real subprocesses on one database, the real sink; the DMARC lookup
of the poster's domain times out at the stub DNS, which keeps each decision open for a
second."""

from __future__ import annotations

import smtplib
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from dnsstub import DnsStub
from sqlalchemy import func, select
from support import (
    DOMAIN,
    ServeProcess,
    Sink,
    cli,
    eventually,
    free_port,
    list_table,
    make_message,
    second_config,
)

from listserv.config import load_config
from listserv.server import prepare
from listserv.store.models import InboxMessage

MODERATOR = "mod@ngo.example"
STRANGER = "stranger@slow.example"
MEMBERS = sorted(f"member{i}@m.example" for i in range(3))


def send(port: int, sender: str, to: str, subject: str, body: str = "Hello\n") -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail(sender, to, make_message(sender, to, subject, body).as_bytes())


def test_one_token_used_by_two_processes_at_once_distributes_once(
    config_file: Callable[..., Path], sink: Sink, dns_stub: DnsStub, tmp_path: Path
) -> None:
    dns_stub.failures["_dmarc.slow.example"] = "timeout"
    ports = [free_port(), free_port()]
    path = config_file(
        lists=[list_table("test", moderators=[MODERATOR])],
        server={"listen": f"127.0.0.1:{ports[0]}", "heartbeat": 0.5},
        dns={"timeout": 1.0},
    )
    other = second_config(path, *ports)
    assert cli(path, "members", "add", "--no-welcome", "test", *MEMBERS).exit_code == 0
    app = prepare(load_config(path))
    processes = [ServeProcess(path), ServeProcess(other)]
    try:
        send(ports[0], STRANGER, f"test@{DOMAIN}", "Held")
        sink.wait_for(lambda got: any(MODERATOR in m.rcpt_tos for m in got))
        (request,) = sink.messages_to(MODERATOR)
        token_address = str(request.message["Reply-To"])
        assert token_address.startswith("test-confirm+")
        replies = [
            threading.Thread(
                target=send, args=(port, MODERATOR, token_address, "Re: moderation", "approve\n")
            )
            for port in ports
        ]
        for thread in replies:
            thread.start()
        for thread in replies:
            thread.join()

        def unprocessed() -> int:
            with app.sessions() as session:
                query = select(func.count()).where(InboxMessage.status == "new")
                return session.scalar(query.select_from(InboxMessage)) or 0

        eventually(lambda: unprocessed() == 0, "both replies processed", timeout=30)
        send(ports[0], MEMBERS[0], f"test@{DOMAIN}", "Last")
        got = sink.wait_for(
            lambda got: sum(m.message["Subject"] == "[test] Last" for m in got) >= 1
        )
    finally:
        for process in processes:
            process.stop()
        app.engine.dispose()
    copies = Counter(r for m in got if m.message["Subject"] == "[test] Held" for r in m.rcpt_tos)
    assert copies == Counter(MEMBERS)


def test_approving_a_held_post_looks_nothing_up(
    start_server, sink: Sink, dns_stub: DnsStub
) -> None:
    """The checks of a post are made once, when it is received, outside any transaction:
    approving it later (the held row locked) waits on no DNS lookup."""
    server = start_server(lists=[list_table("test", moderators=[MODERATOR])])
    assert (
        cli(server.config_path, "members", "add", "--no-welcome", "test", *MEMBERS).exit_code == 0
    )
    server.send(STRANGER, f"test@{DOMAIN}", make_message(STRANGER, f"test@{DOMAIN}", "Held"))
    sink.wait_for(lambda got: any(MODERATOR in m.rcpt_tos for m in got))
    asked = len(dns_stub.queries)
    assert asked > 0  # SPF and DMARC of slow.example, at receipt
    result = cli(server.config_path, "held", "approve", "1")
    assert result.exit_code == 0, result.output
    got = sink.wait_for(lambda got: any(m.message["Subject"] == "[test] Held" for m in got))
    (post,) = [m for m in got if m.message["Subject"] == "[test] Held"]
    assert "spf=" in str(post.message["Authentication-Results"])
    assert dns_stub.queries[asked:] == []
