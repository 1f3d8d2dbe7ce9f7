"""Reading the archive: who may, and the queries behind every page, feed and export.

A visitor who may not read a list's archive must not learn anything from it, so callers turn
``may_read`` being false into the same 404 as an unknown list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Row, Select, distinct, func, select
from sqlalchemy.orm import Session

from listserv.store.lists import MailList
from listserv.store.members import find_member
from listserv.store.models import ArchivedMessage, ArchiveMonth


def may_read(session: Session, mlist: MailList, visitor: str | None) -> bool:
    """Public archives are for anyone, members-only ones for the list's members, moderators
    and owners (*visitor* is the signed-in address, None for anyone else)."""
    setting = mlist.config.archive
    if setting == "public":
        return True
    if setting == "none" or not visitor:
        return False
    return is_insider(session, mlist, visitor)


def is_insider(session: Session, mlist: MailList, visitor: str | None) -> bool:
    """Whether *visitor* may see posters' full addresses: a member, moderator or owner."""
    if not visitor:
        return False
    staff = {*mlist.config.moderators, *mlist.config.owners}
    return visitor in staff or find_member(session, mlist.id, visitor) is not None


def month_bounds(month: str) -> tuple[datetime, datetime] | None:
    """``YYYY-MM`` → [first instant, first instant of the next month) in UTC; None if bad."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        return None
    following = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, following


def month_counts(session: Session, list_id: int) -> list[tuple[str, int]]:
    """(YYYY-MM, posts) for every month with posts, newest first (counted as archived)."""
    rows = session.execute(
        select(ArchiveMonth.month, ArchiveMonth.posts)
        .where(ArchiveMonth.list_id == list_id, ArchiveMonth.posts > 0)
        .order_by(ArchiveMonth.month.desc())
    )
    return [(m, n) for m, n in rows]


def posts_between(
    session: Session, list_id: int, start: datetime | None = None, end: datetime | None = None
) -> list[ArchivedMessage]:
    """The list's archived posts, oldest first, from *start* up to *end* (either open)."""
    query = select(ArchivedMessage).where(ArchivedMessage.list_id == list_id)
    return list(session.scalars(between(query, start, end)))


def between(query: Select[Any], start: datetime | None, end: datetime | None) -> Select[Any]:
    if start is not None:
        query = query.where(ArchivedMessage.date >= start)
    if end is not None:
        query = query.where(ArchivedMessage.date < end)
    return query.order_by(ArchivedMessage.date, ArchivedMessage.id)


LISTED = (
    ArchivedMessage.id,
    ArchivedMessage.message_id,
    ArchivedMessage.thread_id,
    ArchivedMessage.subject,
    ArchivedMessage.date,
    ArchivedMessage.removed_at,
    ArchivedMessage.removed_reason,
    ArchivedMessage.sender_name,
    ArchivedMessage.sender_obfuscated,
    ArchivedMessage.sender_address,
)  # what a month's page shows of a post: its columns, not its bytes


def in_month(list_id: int, start: datetime, end: datetime) -> tuple[ColumnElement[bool], ...]:
    m = ArchivedMessage
    return (m.list_id == list_id, m.date >= start, m.date < end)


def month_size(session: Session, list_id: int, start: datetime, end: datetime) -> tuple[int, int]:
    """How many posts and threads the list has between *start* and *end* (read from the
    index alone: the rows are not visited)."""
    m = ArchivedMessage
    row = session.execute(
        select(func.count(), func.count(distinct(m.thread_id))).where(
            *in_month(list_id, start, end)
        )
    ).one()
    return row[0], row[1]


def listed_between(
    session: Session, list_id: int, start: datetime, end: datetime, offset: int, limit: int
) -> list[Row[Any]]:
    """A page of the posts between *start* and *end*, oldest first: the columns a post's
    line shows."""
    m = ArchivedMessage
    query = select(*LISTED).where(*in_month(list_id, start, end))
    return list(session.execute(query.order_by(m.date, m.id).offset(offset).limit(limit)))


P = TypeVar("P")


@dataclass(frozen=True)
class ThreadSummary(Generic[P]):
    """A thread as a month's page lists it: its first post that month, how many posts it
    has that month and the date of the last."""

    thread_id: int
    first: P
    posts: int
    last_date: datetime


def threads_between(
    session: Session, list_id: int, start: datetime, end: datetime, offset: int, limit: int
) -> list[ThreadSummary[Row[Any]]]:
    """A page of the threads with posts between *start* and *end*, the most recently
    active first, each with its first post then. Grouped in SQL over the index (list,
    date, thread), so a month of a thousand posts costs about what its page does; each
    first post is then found by its thread and date (the thread index)."""
    m = ArchivedMessage
    last = func.max(m.date).label("last_date")
    page = (
        select(m.thread_id, func.count().label("posts"), last, func.min(m.date).label("first"))
        .where(*in_month(list_id, start, end))
        .group_by(m.thread_id)
        .order_by(last.desc(), m.thread_id.desc())
        .offset(offset)
        .limit(limit)
        .subquery()
    )
    rows = session.execute(
        select(*LISTED, page.c.posts, page.c.last_date)
        .join(page, (m.thread_id == page.c.thread_id) & (m.date == page.c.first))
        # Only to be sure (a post being imported has thread 0 until the threads are
        # rebuilt): "+ 0" keeps SQLite from reading the whole list by its index instead.
        .where(m.list_id + 0 == list_id)
        .order_by(page.c.last_date.desc(), m.thread_id.desc(), m.id)
    )
    summaries: dict[int, ThreadSummary[Row[Any]]] = {}
    for row in rows:  # two first posts at the same instant: the first archived
        if row.thread_id not in summaries:
            summaries[row.thread_id] = ThreadSummary(row.thread_id, row, row.posts, row.last_date)
    return list(summaries.values())


def thread_posts(
    session: Session, list_id: int, thread_id: int
) -> list[tuple[int, ArchivedMessage]]:
    """The thread's posts in reply order (each after its parent, siblings by date), with
    their depth."""
    posts = list(
        session.scalars(
            select(ArchivedMessage)
            .where(ArchivedMessage.list_id == list_id, ArchivedMessage.thread_id == thread_id)
            .order_by(ArchivedMessage.date, ArchivedMessage.id)
        )
    )
    ids = {p.id for p in posts}
    children: dict[int | None, list[ArchivedMessage]] = {}
    for post in posts:
        parent = post.parent_id if post.parent_id in ids else None
        children.setdefault(parent, []).append(post)

    ordered: list[tuple[int, ArchivedMessage]] = []
    # Depth first without recursion: a long chain of replies must not hit Python's limit.
    stack = [(0, post) for post in reversed(children.get(None, []))]
    while stack:
        depth, post = stack.pop()
        ordered.append((depth, post))
        stack.extend((depth + 1, child) for child in reversed(children.get(post.id, [])))
    return ordered


def latest_posts(session: Session, list_id: int, limit: int = 20) -> list[ArchivedMessage]:
    return list(
        session.scalars(
            select(ArchivedMessage)
            .where(ArchivedMessage.list_id == list_id, ArchivedMessage.raw.is_not(None))
            .order_by(ArchivedMessage.date.desc(), ArchivedMessage.id.desc())
            .limit(limit)
        )
    )
