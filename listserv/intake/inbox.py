"""Messages the router could not process. A database error (the database unreachable or
locked, a deadlock, two processes racing to insert the same row) is transient: the message
is tried again with back-off along ``[delivery] retry_schedule`` for up to ``give_up_after``.
Anything else means the message cannot be processed as things are (a bug, a broken
template): it is kept as failed, named in the log and in ``queue status``, never pruned, and
``listserv queue reprocess ID`` runs it again once the cause is fixed.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.delivery.queue_admin import queue_counts
from listserv.delivery.recovery import retry_delay
from listserv.store.db import error_line, transaction
from listserv.store.models import InboxMessage, utcnow

log = logging.getLogger(__name__)


def defer(app: App, message_id: int, error: BaseException) -> bool | None:
    """Count a failed attempt and schedule the next one, for any process to take; True while
    the message will be tried again, False once ``give_up_after`` has passed (it is then kept
    as failed), None if it is no longer new."""
    config = app.config.delivery
    now = utcnow()
    reason = error_line(error)
    with transaction(app.sessions) as session:
        stored = session.get(InboxMessage, message_id)
        if stored is None or stored.status != "new":
            return None
        if (now - stored.received_at).total_seconds() >= config.give_up_after:
            stored.attempts += 1
            mark_failed(stored, f"failed after {stored.attempts} attempts: {reason}")
            return False
        delay = retry_delay(config, stored.attempts)
        stored.attempts += 1
        stored.claimed_by = None
        stored.next_attempt_at = now + timedelta(seconds=delay)
        stored.outcome = f"attempt {stored.attempts} failed, next in {delay:g} s: {reason}"[:2000]
    log.warning("message %s: %s", message_id, stored.outcome)
    return True


def keep_failed(app: App, message_id: int, error: BaseException) -> None:
    with transaction(app.sessions) as session:
        stored = session.get(InboxMessage, message_id)
        if stored is not None and stored.status == "new":
            mark_failed(stored, f"failed: {error_line(error)}")


def mark_failed(stored: InboxMessage, outcome: str) -> None:
    stored.status = "failed"
    stored.outcome = outcome[:2000]
    stored.processed_at = utcnow()
    stored.claimed_by = None
    log.error(
        "message %s to %s kept as failed (listserv queue reprocess %s runs it again): %s",
        stored.id,
        stored.rcpt_to,
        stored.id,
        outcome,
    )


def inbox_report(session: Session) -> dict[str, Any]:
    """For ``queue status``: messages waiting, and the failed ones with what went wrong."""
    waiting = session.scalar(
        select(func.count()).select_from(InboxMessage).where(InboxMessage.status == "new")
    )
    failed = session.execute(
        select(InboxMessage.id, InboxMessage.rcpt_to, InboxMessage.outcome)
        .where(InboxMessage.status == "failed")
        .order_by(InboxMessage.id)
    )
    return {
        "inbox": waiting or 0,
        "inbox_failed": [{"id": i, "to": to, "outcome": outcome} for i, to, outcome in failed],
    }


def queue_status(app: App) -> dict[str, Any]:
    """Everything ``queue status`` and the API report: recipients by delivery state, and the
    inbox (waiting, failed)."""
    with app.sessions() as session:
        return {**queue_counts(app), **inbox_report(session)}


def reprocess(app: App, message_id: int) -> bool:
    """Queue a failed message to be processed again from the start; False if there is no
    failed message of that id."""
    with transaction(app.sessions) as session:
        done = session.execute(
            update(InboxMessage)
            .where(InboxMessage.id == message_id, InboxMessage.status == "failed")
            .values(status="new", claimed_by=None, attempts=0, next_attempt_at=None, outcome="")
        )
        return bool(done.rowcount)  # type: ignore[attr-defined]


def queue_text(status: dict[str, Any]) -> str:
    """``queue status`` as text: a count per line, then each failed message."""
    failed = status.get("inbox_failed", [])
    lines = [f"{k}: {v}" for k, v in status.items() if k != "inbox_failed"]
    lines.append(f"inbox_failed: {len(failed)}")
    lines += [f"  message {m['id']} to {m['to']}: {m['outcome']}" for m in failed]
    return "\n".join(lines)
