"""The outbox directory of the sample config: one file per message, however many delivery
workers write at once. Both databases, the real server."""

from __future__ import annotations

from collections.abc import Callable
from email import message_from_bytes
from pathlib import Path

from support import RunningServer, cli

from listserv.delivery.queue_admin import queue_counts

NEWCOMERS = [f"newcomer{i}@x.example" for i in range(40)]


def test_four_workers_writing_in_the_same_second_lose_no_message(
    start_server: Callable[..., RunningServer], tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    server = start_server(delivery={"outbox": str(outbox), "connections": 4})
    # One welcome per new member: forty messages the four workers write out at once.
    result = cli(server.config_path, "members", "add", "test", *NEWCOMERS)
    assert result.exit_code == 0, result.output
    server.wait_for_state(
        lambda: queue_counts(server.app)["sent"] == len(NEWCOMERS), "every welcome sent"
    )
    files = sorted(outbox.iterdir())
    recipients = sorted(message_from_bytes(f.read_bytes())["X-Envelope-To"] for f in files)
    assert recipients == sorted(NEWCOMERS)
