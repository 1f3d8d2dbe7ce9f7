"""A message whose processing fails is never lost: a database error (here a trigger of the
real database refusing the write) is retried with back-off until ``give_up_after``, and the
messages after it are not held up; any other failure (a broken template) keeps the message
as failed, shown by ``queue status``, until ``queue reprocess`` runs it again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dbfaults import allow, refuse
from sqlalchemy import select
from support import DOMAIN, RunningServer, Sink, cli, make_message

from listserv.app import App
from listserv.config import load_config
from listserv.server import prepare
from listserv.store.db import transaction
from listserv.store.models import InboxMessage

MEMBER = "a@x.example"


def refuse_posts_saying(app: App, word: str) -> None:
    """The database refuses to queue any outgoing mail containing *word*."""
    sqlite = app.engine.dialect.name == "sqlite"
    when = (
        f"instr(NEW.raw, CAST('{word}' AS BLOB)) > 0"
        if sqlite
        else f"position('{word}'::bytea in NEW.raw) > 0"
    )
    refuse(app, "refuse", "outgoing", "INSERT", when, "refused by the database")


def message_state(app: App, message_id: int) -> tuple[str, int, str]:
    with app.sessions() as session:
        row = session.execute(
            select(InboxMessage.status, InboxMessage.attempts, InboxMessage.outcome).where(
                InboxMessage.id == message_id
            )
        ).one()
        return tuple(row)  # type: ignore[return-value]


def subjects(sink: Sink) -> list[str]:
    return [m.message["Subject"] for m in sink.received]


def test_database_errors_are_retried_with_back_off_until_the_post_goes_out(
    start_server, sink: Sink
) -> None:
    server: RunningServer = start_server()
    cli(server.config_path, "members", "add", "--no-welcome", "test", MEMBER)
    refuse_posts_saying(server.app, "Poison")
    server.send(MEMBER, f"test@{DOMAIN}", make_message(MEMBER, subject="Poison"))
    server.send(MEMBER, f"test@{DOMAIN}", make_message(MEMBER, subject="Fine"))
    sink.wait_for(lambda got: "[test] Fine" in subjects(sink))
    # More attempts than the five after which it used to be given up.
    server.wait_for_state(lambda: message_state(server.app, 1)[1] > 6, "attempts at Poison")
    status, _, outcome = message_state(server.app, 1)
    assert status == "new" and "refused by the database" in outcome
    allow(server.app, "refuse", "outgoing")
    sink.wait_for(lambda got: "[test] Poison" in subjects(sink))
    assert message_state(server.app, 1)[0] == "done"
    assert sorted(subjects(sink)) == ["[test] Fine", "[test] Poison"]


def test_a_message_that_cannot_be_processed_is_kept_until_reprocessed(
    start_server, sink: Sink, tmp_path: Path
) -> None:
    footer = tmp_path / "custom" / "en" / "footer.txt"
    footer.parent.mkdir(parents=True)
    footer.write_text("{{ unfinished\n")
    server: RunningServer = start_server(
        server={"template_dir": str(tmp_path / "custom"), "retention_days": 1e-6}
    )
    cli(server.config_path, "members", "add", "--no-welcome", "test", MEMBER)
    server.send(MEMBER, f"test@{DOMAIN}", make_message(MEMBER, subject="Kept"))
    server.wait_for_state(lambda: message_state(server.app, 1)[0] == "failed", "the failure")
    # Housekeeping (a retention of a tenth of a second) leaves it alone.
    assert cli(server.config_path, "db", "prune").exit_code == 0
    status: dict[str, Any] = json.loads(cli(server.config_path, "queue", "status", "--json").output)
    ((failed,),) = [status["inbox_failed"]]
    assert failed["id"] == 1 and failed["to"] == f"test@{DOMAIN}"
    assert "TemplateSyntaxError" in failed["outcome"]
    listing = cli(server.config_path, "queue", "status").output
    assert "message 1 to test@lists.example.org: failed: TemplateSyntaxError" in listing

    footer.write_text("-- \nThe test list\n")
    result = cli(server.config_path, "queue", "reprocess", "1")
    assert result.exit_code == 0, result.output
    got = sink.wait_for(lambda got: "[test] Kept" in subjects(sink))
    assert "The test list" in got[0].message.get_body().get_content()
    again = cli(server.config_path, "queue", "reprocess", "1")
    assert again.exit_code == 1 and "no failed message 1" in again.output


def test_queue_status_counts_the_inbox(config_file) -> None:
    path = config_file()
    app = prepare(load_config(path))
    with transaction(app.sessions) as session:
        for status in ("new", "new", "done", "failed", "new"):
            session.add(
                InboxMessage(mail_from="", rcpt_to=f"test@{DOMAIN}", raw=b"", status=status)
            )
    app.engine.dispose()
    status: dict[str, Any] = json.loads(cli(path, "queue", "status", "--json").output)
    assert status["inbox"] == 3
    assert [m["id"] for m in status["inbox_failed"]] == [4]
