"""Memory does not grow with the message times the list: the personalized copies of a
large post (one-click links make each different) are made and sent a group at a time, and
``queue retry`` goes through the recorded failures in chunks. Measured with tracemalloc
around the real server writing to its outbox, and around ``queue retry``; both databases."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import insert
from support import DOMAIN, RunningServer, cli, list_table, make_message

from listserv.delivery.queue_admin import queue_counts, resend_failed
from listserv.store.models import Outgoing, RecipientFailure

MB = 1024 * 1024
MEMBERS = [f"member{i}@m.example" for i in range(80)]


def traced_peak(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_personalized_copies_of_a_large_post_are_not_all_held_at_once(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    server = start_server(
        lists=[list_table("test", max_post_size=0)],
        delivery={"outbox": str(tmp_path / "outbox"), "connections": 1},
        web={
            "listen": "127.0.0.1:0",
            "base_url": "https://lists.example.org",
            "secret_file": str(tmp_path / "web.secret"),
        },
    )
    added = cli(server.config_path, "members", "add", "--no-welcome", "test", *MEMBERS)
    assert added.exit_code == 0, added.output
    body = ("A long report, line after line.\n" * (MB // 32)).strip() + "\n"

    def post_and_deliver() -> None:
        server.send(MEMBERS[0], f"test@{DOMAIN}", make_message(MEMBERS[0], body=body))
        server.wait_for_state(
            lambda: queue_counts(server.app)["sent"] == len(MEMBERS), "every copy", timeout=60
        )

    peak = traced_peak(post_and_deliver)
    # 80 copies of 1 MB each would be 80 MB (twice that with their SMTP payloads).
    assert peak < 45 * MB, f"peak {peak / MB:.0f} MB"
    assert len(list((tmp_path / "outbox").iterdir())) == len(MEMBERS)


def test_queue_retry_goes_through_failures_in_chunks(
    start_server: Callable[..., RunningServer],
) -> None:
    server = start_server(delivery={"retry_schedule": [3600.0]})
    count = 30_000
    with server.app.engine.begin() as connection:
        outgoing = connection.execute(
            insert(Outgoing).returning(Outgoing.id),
            [{"kind": "post", "mail_from": f"test-bounces@{DOMAIN}", "raw": b"x"}],
        ).scalar_one()
        connection.execute(
            insert(RecipientFailure),
            [
                {
                    "outgoing_id": outgoing,
                    "address": f"m{i}@d{i % 7}.example",
                    "domain": f"d{i % 7}.example",
                    "code": 550,
                    "reason": "mailbox unavailable for a while, please try later",
                    "resent": False,
                }
                for i in range(count)
            ],
        )
    server.stop()
    counted: list[int] = []
    peak = traced_peak(lambda: counted.append(resend_failed(server.app)))
    assert counted == [count]
    assert queue_counts(server.app)["queued"] == count
    assert peak < 20 * MB, f"peak {peak / MB:.0f} MB"
