"""A post's place in its list's threads (the rules are archive/threading.py's), found and
written in the posting transaction.

Nearly every post is new, answers an archived post or none, is named by no archived post and
is not older than another with its subject: one statement (``neighbours_statement``) tells
so, and the post goes in by statements built once. A post that adopts others (a parent
archived after its replies, a post dated before others with its subject) is threaded by the
ORM code below, which moves the posts it adopts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Row, Select, bindparam, delete, insert, literal, select, union_all, update
from sqlalchemy.orm import Session

from listserv.archive.threading import SUBJECT_WINDOW, Headers, missing_parents, named_parents
from listserv.store.models import ArchiveAwaited, ArchivedMessage

# Subject matches an earlier post can take its parent from (newest first).
SUBJECT_CANDIDATES = 20

_posts = ArchivedMessage.__table__
_awaited = ArchiveAwaited.__table__


@lru_cache(maxsize=64)
def neighbours_statement(named: int) -> Any:
    """Built once per number of parents a post names (a statement built per post costs
    more than running it, and an expanding IN is rewritten at each run): the post's own
    Message-ID archived already, the archived posts it names, the earlier posts with its
    subject, and whether a later post with its subject or a post naming it is archived."""
    c = _posts.c
    columns = (c.id, c.thread_id, c.message_id, c.in_reply_to, c.references, c.subject_key)

    def part(kind: str, query: Select[Any]) -> Select[Any]:
        # Each part is a subquery: SQLite allows no ORDER BY or LIMIT in a compound's parts.
        query = query.add_columns(literal(kind).label("kind"), *columns, c.date)
        return select(query.where(c.list_id == bindparam("list_id")).subquery())

    same_subject = c.subject_key == bindparam("subject_key")
    named_ids = [bindparam(f"named{i}") for i in range(named)]
    return union_all(
        part("self", select().where(c.message_id == bindparam("message_id"))),
        *([part("named", select().where(c.message_id.in_(named_ids)))] if named else []),
        part(
            "earlier",
            select()
            .where(same_subject, c.date >= bindparam("earliest"), c.date <= bindparam("date"))
            .order_by(c.date.desc(), c.id.desc())
            .limit(SUBJECT_CANDIDATES),
        ),
        part(
            "later",
            select()
            .where(same_subject, c.date > bindparam("date"), c.date <= bindparam("latest"))
            .limit(1),
        ),
        part(
            "child",
            select()
            .select_from(_posts.join(_awaited, _awaited.c.archived_id == c.id))
            .where(
                _awaited.c.list_id == bindparam("list_id"),
                _awaited.c.message_id == bindparam("message_id"),
            )
            .limit(1),
        ),
    )


INSERT_POST = insert(_posts)
# A post that starts a thread is its thread's id, known once it is inserted.
STARTS_THREAD = (
    update(_posts).where(_posts.c.id == bindparam("new_id")).values(thread_id=_posts.c.id)
)


@dataclass(frozen=True)
class Neighbours:
    archived: bool  # a post with its Message-ID is archived already
    adopts: bool  # it may adopt archived posts: the ORM threads it
    parent: Row[Any] | None  # else its parent, when it has one
    named: frozenset[str]  # the parents it names that are archived


def neighbours(session: Session, list_id: int, headers: Headers) -> Neighbours:
    assert headers.date is not None
    named_ids = named_parents(headers)
    rows = (
        session.connection()
        .execute(
            neighbours_statement(len(named_ids)),
            {
                "list_id": list_id,
                "message_id": headers.message_id,
                **{f"named{i}": m for i, m in enumerate(named_ids)},
                "subject_key": headers.subject_key,
                "date": headers.date,
                "earliest": headers.date - SUBJECT_WINDOW,
                "latest": headers.date + SUBJECT_WINDOW,
            },
        )
        .all()
    )
    kinds: dict[str, list[Row[Any]]] = {}
    for row in rows:
        kinds.setdefault(row.kind, []).append(row)
    named = {r.message_id: r for r in kinds.get("named", [])}
    later = kinds.get("later") if headers.subject_key else None
    parent = next((named[m] for m in named_ids if m in named), None)
    if parent is None and headers.subject_key:
        earlier = sorted(kinds.get("earlier", []), key=lambda r: (r.date, r.id), reverse=True)
        parent = first_not_answering(headers.message_id, earlier)
    return Neighbours(
        archived="self" in kinds,
        adopts=bool(later or kinds.get("child")),
        parent=parent,
        named=frozenset(named),
    )


def insert_placed(
    session: Session, list_id: int, columns: dict[str, Any], headers: Headers, found: Neighbours
) -> int:
    """Insert a post that adopts none under the parent *found*; its id."""
    connection = session.connection()
    parent = found.parent
    values = {
        **columns,
        "list_id": list_id,
        "parent_id": parent.id if parent else None,
        "thread_id": parent.thread_id if parent else 0,
    }
    new_id: int = connection.execute(INSERT_POST, values).inserted_primary_key[0]
    if parent is None:
        connection.execute(STARTS_THREAD, {"new_id": new_id})
    await_parents(session, list_id, new_id, missing_parents(headers, found.named))
    return new_id


def insert_threaded(session: Session, list_id: int, columns: dict[str, Any]) -> int:
    """Insert a post that may adopt archived posts, and move those it adopts; its id."""
    row = ArchivedMessage(list_id=list_id, **columns)
    session.add(row)
    session.flush()
    place_in_thread(session, row)
    return row.id


def first_not_answering(message_id: str, candidates: Any) -> Any:
    """The first of *candidates* (posts by subject, newest first) that does not answer the
    post: one naming it (archived before it) is its child, not its parent."""
    return next((r for r in candidates if message_id not in named_parents(headers_of(r))), None)


def headers_of(row: ArchivedMessage) -> Headers:
    return Headers(
        row.message_id, row.in_reply_to, tuple(row.references.split()), row.subject_key, row.date
    )


def place_in_thread(session: Session, row: ArchivedMessage) -> None:
    """Attach the new post to its parent, and adopt the archived posts that name it (their
    parent came later, as with mail read from an mbox out of order)."""
    headers = headers_of(row)
    named = archived_named(session, row.list_id, named_parents(headers))
    parent = find_parent(session, row, named)
    row.parent_id = parent.id if parent else None
    row.thread_id = parent.thread_id if parent else row.id
    await_parents(session, row.list_id, row.id, missing_parents(headers, named))
    for child in naming_children(session, row):
        if better_parent(session, child, row) and not descends_from(session, row, child):
            move_subtree(session, child, row)
    for later in later_by_subject(session, row):
        if not descends_from(session, row, later):
            move_subtree(session, later, row)


def archived_named(
    session: Session, list_id: int, message_ids: list[str]
) -> dict[str, ArchivedMessage]:
    """The posts of the list among *message_ids*, by Message-ID."""
    if not message_ids:
        return {}
    query = select(ArchivedMessage).where(
        ArchivedMessage.list_id == list_id, ArchivedMessage.message_id.in_(message_ids)
    )
    return {r.message_id: r for r in session.scalars(query)}


def find_parent(
    session: Session, row: ArchivedMessage, named: dict[str, ArchivedMessage]
) -> ArchivedMessage | None:
    """The most direct parent the post names that is archived, else the latest post with
    its subject within the window."""
    headers = headers_of(row)
    for message_id in named_parents(headers):
        if message_id in named:
            return named[message_id]
    if not row.subject_key:
        return None
    same_subject = session.scalars(
        select(ArchivedMessage)
        .where(
            ArchivedMessage.list_id == row.list_id,
            ArchivedMessage.subject_key == row.subject_key,
            ArchivedMessage.id != row.id,
            ArchivedMessage.date >= row.date - SUBJECT_WINDOW,
            ArchivedMessage.date <= row.date,
        )
        .order_by(ArchivedMessage.date.desc(), ArchivedMessage.id.desc())
        .limit(20)
    )
    return first_not_answering(row.message_id, same_subject)


def await_parents(session: Session, list_id: int, archived_id: int, message_ids: list[str]) -> None:
    """Note the parents the post names that are not archived, for them to find it."""
    if message_ids:
        session.connection().execute(
            insert(ArchiveAwaited),
            [
                {"archived_id": archived_id, "message_id": m, "list_id": list_id}
                for m in message_ids
            ],
        )


def naming_children(session: Session, row: ArchivedMessage) -> list[ArchivedMessage]:
    """Archived posts naming this one as their parent, which was awaited until now."""
    awaiting = (ArchiveAwaited.list_id == row.list_id, ArchiveAwaited.message_id == row.message_id)
    children = list(
        session.scalars(
            select(ArchivedMessage)
            .join(ArchiveAwaited, ArchiveAwaited.archived_id == ArchivedMessage.id)
            .where(*awaiting)
        )
    )
    if children:
        session.execute(delete(ArchiveAwaited).where(*awaiting))
    return children


def later_by_subject(session: Session, row: ArchivedMessage) -> list[ArchivedMessage]:
    """Later posts with the same subject whose parent, by subject, is now this post: those
    without a parent they name, threaded by subject to an older post or not at all."""
    if not row.subject_key:
        return []
    later = session.scalars(
        select(ArchivedMessage).where(
            ArchivedMessage.list_id == row.list_id,
            ArchivedMessage.subject_key == row.subject_key,
            ArchivedMessage.id != row.id,
            ArchivedMessage.date > row.date,
            ArchivedMessage.date <= row.date + SUBJECT_WINDOW,
        )
    )
    adopted = []
    for post in later:
        named = named_parents(headers_of(post))
        parent = session.get(ArchivedMessage, post.parent_id) if post.parent_id else None
        if row.message_id in named or (parent is not None and parent.message_id in named):
            continue
        if parent is None or parent.date < row.date:
            adopted.append(post)
    return adopted


def better_parent(session: Session, child: ArchivedMessage, new: ArchivedMessage) -> bool:
    """Whether *new* is a more direct parent of *child* than the one it has."""
    named = named_parents(headers_of(child))
    current = session.get(ArchivedMessage, child.parent_id) if child.parent_id else None
    if current is None or current.message_id not in named:
        return True  # no parent, or one found by subject only
    return named.index(new.message_id) < named.index(current.message_id)


def descends_from(session: Session, row: ArchivedMessage, ancestor: ArchivedMessage) -> bool:
    seen: set[int] = set()
    current: ArchivedMessage | None = row
    while current is not None and current.id not in seen:
        if current.id == ancestor.id:
            return True
        seen.add(current.id)
        current = session.get(ArchivedMessage, current.parent_id) if current.parent_id else None
    return False


def move_subtree(session: Session, child: ArchivedMessage, parent: ArchivedMessage) -> None:
    """Hang *child*, and every post below it, under *parent*'s thread."""
    old_thread = list(
        session.scalars(select(ArchivedMessage).where(ArchivedMessage.thread_id == child.thread_id))
    )
    below: dict[int | None, list[ArchivedMessage]] = {}
    for post in old_thread:
        below.setdefault(post.parent_id, []).append(post)
    child.parent_id = parent.id
    stack = [child]
    while stack:
        post = stack.pop()
        post.thread_id = parent.thread_id
        stack.extend(p for p in below.get(post.id, []) if p.thread_id != parent.thread_id)
