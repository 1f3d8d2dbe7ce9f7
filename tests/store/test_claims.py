"""Claims: a message or a batch is never taken by two processes, and a process that lost a
batch (stalled past three heartbeats) does not overwrite what its new owner records. Both
databases; the competing process is a second engine on the same database."""

from __future__ import annotations

import smtplib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from support import DOMAIN, Received, ServeProcess, Sink, cli, free_port, make_message

from listserv.app import App
from listserv.config import load_config
from listserv.delivery import worker as delivery
from listserv.delivery.outbound import queue_mail
from listserv.delivery.smtp_terms import Result
from listserv.intake import router
from listserv.server import prepare
from listserv.store.claims import release_claims
from listserv.store.db import transaction
from listserv.store.models import Delivery, InboxMessage, RecipientFailure


@pytest.fixture
def apps(config_file: Callable[..., Path]) -> Iterator[tuple[App, App]]:
    """Two apps (two engines, as two ``serve`` processes would have) on one database."""
    path = config_file()
    first, second = prepare(load_config(path)), prepare(load_config(path))
    yield first, second
    first.engine.dispose()
    second.engine.dispose()


def when_claim_has_read(app: App, competitor: Callable[[], Any]) -> list[Any]:
    """Run *competitor* right after the first statement of *app*'s next transaction if that
    statement only read: the moment a read-then-write claim is open to a race. Returns what
    the competitor got (nothing when the claim wrote first)."""
    got: list[Any] = []
    armed = [True]

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if armed[0]:
            armed[0] = False
            if statement.lstrip().upper().startswith("SELECT"):
                got.extend(competitor())

    event.listen(app.engine, "after_cursor_execute", after)
    return got


def test_a_message_is_claimed_by_one_process_only(apps: tuple[App, App]) -> None:
    first, second = apps
    with transaction(first.sessions) as session:
        for _ in range(5):
            session.add(InboxMessage(mail_from="a@x.example", rcpt_to=f"test@{DOMAIN}", raw=b"x"))
    theirs = when_claim_has_read(first, lambda: router.claim_messages(second, "second"))
    ours = router.claim_messages(first, "first")
    theirs += router.claim_messages(second, "second")
    assert sorted(ours + theirs) == [1, 2, 3, 4, 5]
    assert not set(ours) & set(theirs)


def queue_batches(app: App, count: int) -> None:
    with transaction(app.sessions) as session:
        queue_mail(
            session,
            kind="notice",
            mail_from=f"test-bounces@{DOMAIN}",
            message=b"Subject: hi\r\n\r\nhi\r\n",
            recipients=[f"m{i}@x.example" for i in range(count)],
            batch_size=1,
            signer=None,
        )


def test_a_batch_is_claimed_by_one_process_only(apps: tuple[App, App]) -> None:
    first, second = apps
    queue_batches(first, 6)
    theirs = when_claim_has_read(first, lambda: delivery.claim_batches(second, "second", 3))
    ours = delivery.claim_batches(first, "first", 3)
    theirs += delivery.claim_batches(second, "second", 3)
    ids = [b.id for b in ours + theirs]
    assert sorted(ids) == [1, 2, 3, 4, 5, 6]


def rows(app: App) -> list[tuple[int, str, str | None]]:
    with app.sessions() as session:
        query = select(Delivery.id, Delivery.status, Delivery.claimed_by).order_by(Delivery.id)
        return [tuple(row) for row in session.execute(query)]  # type: ignore[misc]


def failures(app: App) -> int:
    with app.sessions() as session:
        return session.scalar(select(func.count()).select_from(RecipientFailure)) or 0


@pytest.mark.parametrize(
    "outcome",
    ["accepted", "temporary", "mixed"],
)
def test_a_process_that_lost_its_batch_records_nothing_over_the_new_owner(
    apps: tuple[App, App], outcome: str
) -> None:
    first, second = apps
    queue_batches(first, 1)
    (stalled,) = delivery.claim_batches(first, "first", 1)
    # "first" missed three heartbeats: its claims are released and "second" takes the batch.
    with transaction(first.sessions) as session:
        release_claims(session, ["first"])
    (taken,) = delivery.claim_batches(second, "second", 1)
    result = Result()
    if outcome == "accepted":
        result.accepted.append("m0@x.example")
    elif outcome == "temporary":
        result.fail(["m0@x.example"], 451, "try later")
    else:
        result.fail(["m0@x.example"], 550, "no such user")
    delivery.record(first, stalled, result)
    assert rows(first) == [(taken.id, "sending", "second")]
    assert failures(first) == 0

    delivery.record(second, taken, Result(accepted=["m0@x.example"]))
    assert rows(first) == [(taken.id, "sent", None)]


def test_a_released_batch_nobody_took_yet_is_recorded(apps: tuple[App, App]) -> None:
    first, _ = apps
    queue_batches(first, 1)
    (stalled,) = delivery.claim_batches(first, "first", 1)
    with transaction(first.sessions) as session:
        release_claims(session, ["first"])
    delivery.record(first, stalled, Result(accepted=["m0@x.example"]))
    # Sent once already: not sent again.
    assert rows(first) == [(stalled.id, "sent", None)]


def test_two_serve_processes_on_one_database_send_each_post_once(
    config_file: Callable[..., Path], sink: Sink, tmp_path: Path
) -> None:
    members = {f"member{i}@m.example" for i in range(20)}
    ports = [free_port(), free_port()]
    path = config_file(server={"listen": f"127.0.0.1:{ports[0]}", "heartbeat": 0.3})
    other = tmp_path / "second" / "config.toml"
    other.parent.mkdir()
    other.write_text(path.read_text().replace(str(ports[0]), str(ports[1])))
    result = cli(path, "members", "add", "--no-welcome", "test", *sorted(members))
    assert result.exit_code == 0, result.output
    processes = [ServeProcess(path), ServeProcess(other)]
    try:
        subjects = [f"Post {i}" for i in range(12)]
        for i, subject in enumerate(subjects):
            with smtplib.SMTP("127.0.0.1", ports[i % 2]) as client:
                message = make_message("member0@m.example", subject=subject)
                client.sendmail("member0@m.example", f"test@{DOMAIN}", message.as_bytes())
        sink.wait_for(lambda got: len(posts_by_member(got)) == len(members) * len(subjects))
        # A later post, on its own: whatever was sent twice has arrived by then.
        with smtplib.SMTP("127.0.0.1", ports[0]) as client:
            message = make_message("member0@m.example", subject="Last")
            client.sendmail("member0@m.example", f"test@{DOMAIN}", message.as_bytes())
        got = sink.wait_for(lambda got: len(posts_by_member(got, "[test] Last")) == len(members))
    finally:
        for process in processes:
            process.stop()
    counts = Counter(posts_by_member(got, *(f"[test] {s}" for s in subjects)))
    assert counts == Counter({(member, f"[test] {s}"): 1 for member in members for s in subjects})


def posts_by_member(got: list[Received], *subjects: str) -> list[tuple[str, str]]:
    """(member, subject) for every copy of a post received (of *subjects*, or all)."""
    return [
        (rcpt, received.message["Subject"])
        for received in got
        if not subjects or received.message["Subject"] in subjects
        for rcpt in received.rcpt_tos
    ]
