"""A message sent to several list addresses in one SMTP transaction is stored once: one body,
a row per recipient that refers to it, each processed on its own; the body is deleted with the
last of those rows. The real daemon over SMTP, both databases."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from support import DOMAIN, RunningServer, Sink, cli, list_table, make_message

from listserv.housekeeping import prune
from listserv.store.models import InboxMessage, ReceivedBody, utcnow

LISTS = ["alpha", "beta", "gamma"]
POSTER = "poster@x.example"


def counts(server: RunningServer) -> tuple[int, int]:
    """How many bodies and how many inbox rows are stored."""
    with server.app.sessions() as session:
        bodies = session.scalar(select(func.count()).select_from(ReceivedBody))
        messages = session.scalar(select(func.count()).select_from(InboxMessage))
    return bodies or 0, messages or 0


def test_one_transaction_to_three_lists_is_stored_once_and_pruned_with_its_last_message(
    start_server, sink: Sink
) -> None:
    server: RunningServer = start_server(lists=[list_table(n, posting="open") for n in LISTS])
    for name in LISTS:
        result = cli(server.config_path, "members", "add", "--no-welcome", name, "m@x.example")
        assert result.exit_code == 0, result.output
    message = make_message(POSTER, subject="Everywhere", body="Sent once.\n")
    assert server.send(POSTER, [f"{name}@{DOMAIN}" for name in LISTS], message) == {}

    got = sink.wait_for(lambda rs: len(rs) == len(LISTS))
    assert sorted(str(r.message["Subject"]) for r in got) == [
        f"[{name}] Everywhere" for name in LISTS
    ]
    assert counts(server) == (1, 3)
    with server.app.sessions() as session:
        stored = session.scalars(select(InboxMessage).order_by(InboxMessage.id)).all()
        assert [m.status for m in stored] == ["done"] * 3
        assert {m.body_id for m in stored} == {stored[0].body_id}
        assert all(b"Sent once." in m.raw for m in stored)

    # Each post is kept for its list's digest; once two issues went out, their rows go and
    # the bytes stay for the third.
    later = utcnow() + timedelta(days=server.config.server.retention_days + 1)
    for name in LISTS[:2]:
        assert cli(server.config_path, "digest", "send", name).exit_code == 0
    assert prune(server.app, now=later)["messages"] == 2
    assert counts(server) == (1, 1)
    with server.app.sessions() as session:
        (last,) = session.scalars(select(InboxMessage)).all()
        assert last.rcpt_to == f"gamma@{DOMAIN}" and b"Sent once." in last.raw

    assert cli(server.config_path, "digest", "send", "gamma").exit_code == 0
    assert prune(server.app, now=later)["messages"] == 1
    assert counts(server) == (0, 0)
