"""What delivery tells the operator: one log line per delivery transaction (our message and
batch, the list, how many recipients, the smarthost's reply with its queue id), per deferral
(the reply and the next attempt) and per refused recipient, and the counters ``/metrics``
shows."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

from prometheus_client import Counter

from listserv.delivery.smtp_terms import Result

log = logging.getLogger("listserv.delivery")
SENT = Counter("listserv_deliveries_sent", "Recipients the smarthost accepted")
DEFERRED = Counter("listserv_deliveries_deferred", "Recipients queued again after a 4xx")
FAILED = Counter("listserv_deliveries_failed", "Recipients refused (5xx) or given up on")


class BatchLike(Protocol):
    id: int
    outgoing_id: int
    mail_from: str


def list_of(mail_from: str) -> str:
    """The list a message is sent for, from its envelope sender ``NAME-bounces…@domain``."""
    local = mail_from.partition("@")[0]
    name, sep, _ = local.partition("-bounces")
    return name if sep else "-"


def outcome(
    batch: BatchLike,
    result: Result,
    retry: dict[str, tuple[int, str]],
    failures: dict[str, tuple[int, str]],
    next_attempt_at: datetime,
) -> None:
    """Log and count what became of one batch's recipients."""
    what = f"outgoing {batch.outgoing_id} batch {batch.id} (list {list_of(batch.mail_from)})"
    if result.accepted:
        SENT.inc(len(result.accepted))
        log.info(
            "delivered %s: %d recipients, %s",
            what,
            len(result.accepted),
            result.reply or "written to the outbox",
        )
    if retry:
        DEFERRED.inc(len(retry))
        code, reason = next(iter(retry.values()))
        log.info(
            "deferred %s: %d recipients, %d %s; next attempt %s",
            what,
            len(retry),
            code,
            reason,
            f"{next_attempt_at:%Y-%m-%dT%H:%M:%SZ}",
        )
    for address, (code, reason) in failures.items():
        FAILED.inc()
        log.info("refused %s: <%s> %d %s", what, address, code, reason)
