"""Bounce scores (pure): how a member's score moves with each failure, and what state a
member's delivery is in.

Hard and soft failures raise the member's score, at most once per
``bounce_score_interval_days``; the score starts again from zero after ``bounce_reset_days``
without a bounce.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from listserv.bounces.reports import Kind
from listserv.config import ListConfig
from listserv.store.models import Member


def next_score(
    config: ListConfig, score: float, last_bounce: datetime | None, kind: Kind, now: datetime
) -> tuple[float, bool]:
    """(the new score, whether this failure counted) for one failure of *kind* at *now*."""
    weight = {"hard": config.bounce_hard_weight, "soft": config.bounce_soft_weight}.get(kind)
    if weight is None:
        return score, False
    if last_bounce is not None:
        since = now - last_bounce
        if since < timedelta(days=config.bounce_score_interval_days):
            return score, False
        if since >= timedelta(days=config.bounce_reset_days):
            score = 0.0
    return score + weight, True


def member_state(member: Member) -> str:
    if member.disabled_reason:
        return f"disabled: {member.disabled_reason}"
    return "probing" if member.probe_digest else "enabled"


def enable_delivery(member: Member) -> None:
    """Back to normal delivery with a clean slate (``members set --enable``)."""
    member.disabled_reason = None
    member.bounce_score = 0.0
    member.last_bounce_at = None
    member.probe_digest = None
    member.probe_sent_at = None
    member.bounce_warnings = 0
    member.last_warning_at = None
