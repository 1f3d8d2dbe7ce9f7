"""Housekeeping deletes what has served its purpose and keeps what is still needed: by
``listserv db prune`` and by ``serve`` on its schedule, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from support import DOMAIN, cli

from listserv.app import App
from listserv.config import load_config
from listserv.server import prepare
from listserv.store.db import transaction
from listserv.store.models import (
    AutoReply,
    Delivery,
    DigestEntry,
    HeldMessage,
    InboxMessage,
    MemberEvent,
    Outgoing,
    PostRecord,
    ReceivedBody,
    RecipientFailure,
    Token,
    utcnow,
)

OLD = utcnow() - timedelta(days=40)
RECENT = utcnow() - timedelta(hours=1)
YESTERDAY = utcnow() - timedelta(days=2)


def message(name: str, status: str, at=OLD) -> InboxMessage:
    return InboxMessage(
        mail_from="a@x.example",
        rcpt_to=f"test@{DOMAIN}",
        raw=name.encode(),
        status=status,
        received_at=at,
        processed_at=at,
    )


def populate(app: App) -> None:
    with transaction(app.sessions) as session:

        def token(name: str, expires, used=None) -> Token:
            return Token(
                digest=name,
                list_id=1,
                address="",
                action="subscribe",
                created_at=OLD,
                expires_at=expires,
                used_at=used,
            )

        session.add_all(
            [
                token("used-long-ago", utcnow() + timedelta(days=1), used=OLD),
                token("expired-long-ago", OLD),
                token("used-lately", OLD + timedelta(days=50), used=RECENT),
                token("live", utcnow() + timedelta(days=3)),
                MemberEvent(list_id=1, address="a@x.example", kind="hard", received_at=OLD),
                MemberEvent(list_id=1, address="b@x.example", kind="hard", received_at=RECENT),
                PostRecord(list_id=1, sender="a@x.example", posted_at=YESTERDAY),
                PostRecord(list_id=1, sender="b@x.example", posted_at=RECENT),
                AutoReply(address="a@x.example", sent_at=YESTERDAY),
                AutoReply(address="b@x.example", sent_at=RECENT),
                message("done", "done"),
                message("failed", "failed"),
                message("new", "new"),
                message("recent", "done", RECENT),
                message("held-pending", "done"),
                message("held-decided", "done"),
                message("in-digest", "done"),
            ]
        )
        session.flush()
        ids = {m.raw.decode(): m.id for m in session.scalars(select(InboxMessage))}
        for name, status in (("held-pending", "pending"), ("held-decided", "approved")):
            session.add(
                HeldMessage(
                    list_id=1,
                    message_id=ids[name],
                    sender="a@x.example",
                    rule="moderated",
                    reason="",
                    status=status,
                    held_at=OLD,
                )
            )
        session.add(DigestEntry(list_id=1, message_id=ids["in-digest"], raw=b"x", size=1))
        for name, statuses in (
            ("sent", ["sent", "failed"]),
            ("retrying", ["sent", "queued"]),
            ("sending", ["sending"]),
        ):
            row = Outgoing(
                kind="post", mail_from=f"test-bounces@{DOMAIN}", raw=name.encode(), created_at=OLD
            )
            session.add(row)
            session.flush()
            for status in statuses:
                session.add(
                    Delivery(
                        outgoing_id=row.id,
                        recipients="m@x.example",
                        count=1,
                        status=status,
                        created_at=OLD,
                    )
                )
            session.add(
                RecipientFailure(
                    outgoing_id=row.id,
                    address="m@x.example",
                    domain="x.example",
                    code=550,
                    reason="no",
                )
            )
        session.add(Outgoing(kind="post", mail_from=f"test-bounces@{DOMAIN}", raw=b"recent"))


def remaining(app: App) -> dict[str, list]:
    with app.sessions() as session:

        def names(column) -> list:
            return sorted(session.scalars(select(column)))

        messages = select(ReceivedBody.raw).join(InboxMessage.body)

        return {
            "tokens": names(Token.digest),
            "member_events": names(MemberEvent.address),
            "post_log": names(PostRecord.sender),
            "auto_replies": names(AutoReply.address),
            "messages": sorted(r.decode() for r in session.scalars(messages)),
            "bodies": len(names(ReceivedBody.id)),
            "held": names(HeldMessage.status),
            "outgoing": [r.decode() for r in names(Outgoing.raw)],
            "deliveries": names(Delivery.status),
            "failures": len(names(RecipientFailure.id)),
            "digest_entries": len(names(DigestEntry.id)),
        }


KEPT = {
    "tokens": ["live", "used-lately"],
    "member_events": ["b@x.example"],
    "post_log": ["b@x.example"],
    "auto_replies": ["b@x.example"],
    "messages": ["failed", "held-pending", "in-digest", "new", "recent"],
    # The bytes of the pruned messages went with them.
    "bodies": 5,
    "held": ["pending"],
    "outgoing": ["recent", "retrying", "sending"],
    "deliveries": ["queued", "sending", "sent"],
    "failures": 2,
    "digest_entries": 1,
}


def test_db_prune_deletes_what_is_done_and_keeps_what_is_needed(
    config_file: Callable[..., Path],
) -> None:
    path = config_file()
    app = prepare(load_config(path))
    populate(app)
    result = cli(path, "db", "prune")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "tokens: 2 deleted\nmember_events: 1 deleted\npost_log: 1 deleted\n"
        "auto_replies: 1 deleted\noutgoing: 1 deleted\nmessages: 2 deleted\n"
        "portal: 0 deleted\n"
    )
    assert remaining(app) == KEPT
    again = cli(path, "db", "prune")
    assert again.output.count(": 0 deleted") == 7
    app.engine.dispose()


def test_serve_prunes_on_its_schedule_after_the_configured_retention(start_server) -> None:
    server = start_server(server={"housekeeping_interval": 0.2, "retention_days": 60})
    populate(server.app)

    def day_old_rows() -> int:
        with server.app.sessions() as session:
            old_replies = select(AutoReply.id).where(AutoReply.sent_at <= YESTERDAY)
            old_posts = select(PostRecord.id).where(PostRecord.posted_at <= YESTERDAY)
            return len(session.scalars(old_replies.union_all(old_posts)).all())

    # 60 days: only the day-long windows are pruned.
    server.wait_for_state(lambda: day_old_rows() == 0, what="the day-old rows pruned")
    kept = remaining(server.app)
    assert set(kept["tokens"]) >= {"used-long-ago", "expired-long-ago", "used-lately", "live"}
    assert set(kept["messages"]) >= {"done", "failed", "new", "held-decided", "in-digest"}
    assert "b@x.example" in kept["member_events"] and "a@x.example" in kept["member_events"]
