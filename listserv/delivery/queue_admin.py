"""The operator's view of the delivery queue: recipients by state (``queue status``) and
failed recipients queued again (``queue retry``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Row, case, func, insert, select, update
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.delivery.forget import still_has_body
from listserv.store.db import transaction
from listserv.store.models import Delivery, Outgoing, RecipientFailure, utcnow

# Recorded failures queued again per transaction by ``queue retry``: memory stays the same
# however many there are.
RETRY_CHUNK = 1000


def resend_failed(app: App, domain: str | None = None) -> int:
    """Queue failed recipients again (``queue retry``); returns how many. Mail whose body
    was dropped once sent (it carried live tokens) cannot be resent and is left out."""
    total, after = 0, 0
    while True:
        with transaction(app.sessions) as session:
            query = (
                select(RecipientFailure.id, RecipientFailure.outgoing_id, RecipientFailure.address)
                .join(Outgoing, Outgoing.id == RecipientFailure.outgoing_id)
                .where(
                    RecipientFailure.resent.is_(False),
                    RecipientFailure.id > after,
                    still_has_body(),
                )
            )
            if domain:
                query = query.where(RecipientFailure.domain == domain.lower())
            rows = session.execute(query.order_by(RecipientFailure.id).limit(RETRY_CHUNK)).all()
            if not rows:
                return total
            queue_again(app, session, rows)
        total += len(rows)
        after = rows[-1].id


def queue_again(app: App, session: Session, rows: Sequence[Row[tuple[int, int, str]]]) -> None:
    by_outgoing: dict[int, list[str]] = {}
    for _, outgoing_id, address in rows:
        by_outgoing.setdefault(outgoing_id, []).append(address)
    now = utcnow()
    size = app.config.delivery.max_recipients
    session.execute(
        insert(Delivery),
        [
            {
                "outgoing_id": outgoing_id,
                "recipients": "\n".join(addresses[start : start + size]),
                "count": len(addresses[start : start + size]),
                "created_at": now,
                "next_attempt_at": now,
            }
            for outgoing_id, addresses in by_outgoing.items()
            for start in range(0, len(addresses), size)
        ],
    )
    session.execute(
        update(RecipientFailure)
        .where(RecipientFailure.id.in_([row[0] for row in rows]))
        .values(resent=True)
    )
    session.info["wake_delivery"] = True


def queue_counts(app: App) -> dict[str, int]:
    """Recipients by state: queued (due now), deferred (waiting to retry), sending, sent,
    failed."""
    state = case(
        (
            (Delivery.status == "queued") & (Delivery.attempts > 0),
            "deferred",
        ),
        else_=Delivery.status,
    )
    counts = {"queued": 0, "deferred": 0, "sending": 0, "sent": 0, "failed": 0}
    with app.sessions() as session:
        for name, total in session.execute(select(state, func.sum(Delivery.count)).group_by(state)):
            counts[name] = counts.get(name, 0) + int(total or 0)
        counts["failed"] = (
            session.scalar(
                select(func.count())
                .select_from(RecipientFailure)
                .where(RecipientFailure.resent.is_(False))
            )
            or 0
        )
    return counts
