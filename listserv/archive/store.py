"""Writing the archive: a post is archived once per list (by Message-ID) with its thread, its
search words, and its poster; removed or erased, it keeps only its place in the thread."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from listserv.archive.render import header_text, obfuscate, read_post, text_of
from listserv.archive.threading import (
    SUBJECT_WINDOW,
    Headers,
    message_ids,
    missing_parents,
    named_parents,
    subject_key,
)
from listserv.archive.words import index_text
from listserv.mail.addresses import InvalidAddress, normalize
from listserv.mail.codec import MAIL_POLICY, eight_bit_text, subject_of
from listserv.mail.headers import one_line
from listserv.store.lists import MailList
from listserv.store.models import (
    ArchiveAwaited,
    ArchivedMessage,
    ArchiveMonth,
    ArchiveSearchText,
    utcnow,
)

log = logging.getLogger(__name__)
# A Date this far ahead of the archiving time is a wrong clock: the archiving time is used.
CLOCK_SKEW = timedelta(days=1)


@dataclass(frozen=True)
class ArchiveEntry:
    """What archiving a post writes, read from its bytes alone: the columns of its
    ``archived_messages`` row (all but the list and its place in a thread) and the words
    search reads. No database is involved, so an import reads posts in worker processes."""

    columns: dict[str, Any]
    words: str

    @property
    def message_id(self) -> str:
        return str(self.columns["message_id"])


def archive_entry(
    raw: bytes, subject_prefix: str, now: datetime, poster: str | None = None
) -> ArchiveEntry:
    """The entry of a post, distributed or imported alike. *poster* is the From as the
    poster wrote it (the distributed From may be rewritten for DMARC)."""
    message = read_post(raw)  # compat32, as pages read it: the index holds what they show
    subject = subject_of(message)
    headers = threading_headers(message, raw, subject_key(subject, subject_prefix), now)
    name, address = poster_of(poster if poster is not None else raw_header(message, "From"))
    assert headers.date is not None
    columns = {
        "message_id": headers.message_id,
        "in_reply_to": headers.in_reply_to,
        "references": " ".join(headers.references),
        "subject_key": headers.subject_key[:500],
        "date": headers.date,
        "archived_at": now,
        "sender_name": name[:200],
        "sender_obfuscated": obfuscate(address) if address else "",
        "sender_address": address[:320],
        "subject": subject,
        "size": len(raw),
        "raw": raw,
    }
    return ArchiveEntry(columns, post_words(subject, columns["sender_name"], message))


def archive_post(
    session: Session,
    list_id: int,
    raw: bytes,
    *,
    subject_prefix: str = "",
    poster: str | None = None,
    now: datetime | None = None,
) -> ArchivedMessage | None:
    """Archive *raw* (the post as distributed) for the list, in its thread; None when a post
    with its Message-ID is archived already."""
    entry = archive_entry(raw, subject_prefix, now or utcnow(), poster)
    exists = select(ArchivedMessage.id).where(
        ArchivedMessage.list_id == list_id, ArchivedMessage.message_id == entry.message_id
    )
    if session.scalar(exists) is not None:
        return None
    row = ArchivedMessage(list_id=list_id, **entry.columns)
    session.add(row)
    session.flush()
    place_in_thread(session, row)
    session.connection().execute(
        insert(ArchiveSearchText), {"archived_id": row.id, "list_id": list_id, "words": entry.words}
    )
    count_in_months(session, list_id, [row.date])
    return row


def count_in_months(session: Session, list_id: int, dates: list[datetime]) -> None:
    """Add newly archived posts (by their dates) to their months' counts."""
    months = Counter(date.astimezone(UTC).strftime("%Y-%m") for date in dates)
    if months:
        session.connection().execute(
            MONTH_UPSERTS[session.get_bind().dialect.name],
            [{"list_id": list_id, "month": m, "posts": n} for m, n in months.items()],
        )


def month_upsert(dialect_insert: Any) -> Any:
    """Built once: a statement built per post costs more than running it."""
    statement = dialect_insert(ArchiveMonth)
    return statement.on_conflict_do_update(
        index_elements=[ArchiveMonth.list_id, ArchiveMonth.month],
        set_={"posts": ArchiveMonth.posts + statement.excluded.posts},
    )


MONTH_UPSERTS = {"sqlite": month_upsert(sqlite_insert), "postgresql": month_upsert(pg_insert)}


def raw_header(message: Message, name: str) -> str:
    """A header's value as written, without the email package's parser (some malformed
    Message-IDs make it raise, and an archive must take whatever was distributed)."""
    value = next((v for k, v in message.raw_items() if k.lower() == name.lower()), "")
    text = value if isinstance(value, str) else str(value)
    written = eight_bit_text(message, text)
    return text if written is None else written


def archive_distributed(session: Session, mlist: MailList, raw: bytes, poster: str) -> None:
    """Archive a post being distributed, in the posting transaction. Should the archive
    choke on some input nobody foresaw, the post still goes out (unarchived, logged):
    members' mail matters more than its copy."""
    try:
        with session.begin_nested():
            archive_post(
                session,
                mlist.id,
                raw,
                subject_prefix=mlist.config.subject_prefix or "",
                poster=poster,
            )
    except (SQLAlchemyError, MemoryError):
        raise  # the transaction is broken anyway: the router tries the post again
    except Exception:
        log.exception("list %s: the post could not be archived", mlist.name)


def threading_headers(message: Message, raw: bytes, key: str, now: datetime) -> Headers:
    ids = message_ids(raw_header(message, "Message-ID"))
    # A post without a Message-ID gets one from its bytes, the same at every import.
    message_id = ids[0] if ids else f"{hashlib.sha256(raw).hexdigest()[:32]}@archive.invalid"
    replied = message_ids(raw_header(message, "In-Reply-To"))
    return Headers(
        message_id=message_id[:500],
        in_reply_to=replied[0][:500] if replied else "",
        references=tuple(m[:500] for m in message_ids(raw_header(message, "References"))),
        subject_key=key,
        date=post_date(message, now),
    )


def post_date(message: Message, now: datetime) -> datetime:
    try:
        date = parsedate_to_datetime(raw_header(message, "Date"))
    except (TypeError, ValueError, IndexError):
        return now
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    return now if date > now + CLOCK_SKEW else date.astimezone(UTC)


@lru_cache(maxsize=4096)  # the same few people post again and again
def poster_of(from_value: str) -> tuple[str, str]:
    """Display name and address (normalised as members are stored) of a From value as
    written; "" for what is missing."""
    value = one_line(from_value)
    try:
        # The email package's own reading gets encoded words next to plain text right
        # ("=?utf-8?b?…?=. <a@x>"); on input it cannot read, the plain split below does.
        address = MAIL_POLICY.header_factory("From", value).addresses[0]
        name, found = address.display_name, address.addr_spec
    except (IndexError, ValueError, TypeError, AttributeError):
        pairs = getaddresses([value])
        name, found = pairs[0] if pairs else ("", "")
        name = header_text(name)
    name = one_line(name)
    if "@" not in found:
        return name, ""
    try:
        return name, normalize(found)
    except InvalidAddress:
        return name, found.lower()


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
    await_parents(session, row, missing_parents(headers, named))
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
    # A post answering this one by name (archived before it) is its child, not its parent.
    return next(
        (r for r in same_subject if row.message_id not in named_parents(headers_of(r))), None
    )


def await_parents(session: Session, row: ArchivedMessage, message_ids: list[str]) -> None:
    """Note the parents the post names that are not archived, for them to find it."""
    if message_ids:
        session.connection().execute(
            insert(ArchiveAwaited),
            [{"archived_id": row.id, "message_id": m, "list_id": row.list_id} for m in message_ids],
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


def post_words(subject: str, sender_name: str, message: Message) -> str:
    """What the search index holds of a post: its subject, poster and readable text."""
    return index_text(f"{subject}\n{sender_name}\n{text_of(message)}")


def remove_post(
    session: Session, row: ArchivedMessage, reason: str, now: datetime | None = None
) -> None:
    """Delete the post's bytes, words and poster for good; the thread keeps a placeholder
    saying it was removed and why."""
    session.execute(delete(ArchiveSearchText).where(ArchiveSearchText.archived_id == row.id))
    row.raw = None
    row.subject = ""
    row.sender_name = row.sender_obfuscated = row.sender_address = ""
    row.size = 0
    row.removed_at = now or utcnow()
    row.removed_reason = reason


def find_post(session: Session, list_id: int, message_id: str) -> ArchivedMessage | None:
    return session.scalar(
        select(ArchivedMessage).where(
            ArchivedMessage.list_id == list_id,
            ArchivedMessage.message_id == message_id.strip().strip("<>"),
        )
    )


def forget_address(session: Session, address: str, list_id: int | None = None) -> int:
    """Erase every archived post by *address* (of one list, or of all); how many."""
    query = select(ArchivedMessage).where(ArchivedMessage.sender_address == address.lower())
    if list_id is not None:
        query = query.where(ArchivedMessage.list_id == list_id)
    rows = list(session.scalars(query))
    for row in rows:
        remove_post(session, row, "erased")
    return len(rows)
