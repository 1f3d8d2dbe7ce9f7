"""The operator's view of the delivery queue: recipients by state (``queue status``) and
failed recipients queued again (``queue retry``)."""

from __future__ import annotations

from sqlalchemy import case, func, select

from listserv.app import App
from listserv.store.db import transaction
from listserv.store.models import Delivery, RecipientFailure, utcnow


def resend_failed(app: App, domain: str | None = None) -> int:
    """Queue failed recipients again (``queue retry``); returns how many."""
    config = app.config.delivery
    with transaction(app.sessions) as session:
        query = select(RecipientFailure).where(RecipientFailure.resent.is_(False))
        if domain:
            query = query.where(RecipientFailure.domain == domain.lower())
        failures = list(session.scalars(query.order_by(RecipientFailure.outgoing_id)))
        by_outgoing: dict[int, list[str]] = {}
        for failure in failures:
            by_outgoing.setdefault(failure.outgoing_id, []).append(failure.address)
            failure.resent = True
        now = utcnow()
        for outgoing_id, addresses in by_outgoing.items():
            for start in range(0, len(addresses), config.max_recipients):
                chunk = addresses[start : start + config.max_recipients]
                session.add(
                    Delivery(
                        outgoing_id=outgoing_id,
                        recipients="\n".join(chunk),
                        count=len(chunk),
                        created_at=now,
                        next_attempt_at=now,
                    )
                )
        session.info["wake_delivery"] = True
    return len(failures)


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
