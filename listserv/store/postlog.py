"""How many posts a list and a sender had lately, for the daily caps.

Every post accepted or held is logged; refused and discarded ones are not, so spam from
strangers never uses up a list's allowance. The log only needs the counting window, and the
housekeeping prunes what is older.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from listserv.store.models import PostRecord

WINDOW = timedelta(days=1)


LOG_POST = insert(PostRecord)


def log_post(session: Session, list_id: int, sender: str, at: datetime) -> None:
    session.connection().execute(LOG_POST, {"list_id": list_id, "sender": sender, "posted_at": at})


def posts_since(session: Session, list_id: int, since: datetime, sender: str | None = None) -> int:
    query = (
        select(func.count())
        .select_from(PostRecord)
        .where(PostRecord.list_id == list_id, PostRecord.posted_at > since)
    )
    if sender is not None:
        query = query.where(PostRecord.sender == sender)
    return session.scalar(query) or 0
