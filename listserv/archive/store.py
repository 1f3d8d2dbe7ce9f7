"""Writing the archive: a post is archived once per list (by Message-ID) with its thread, its
search words, and its poster; removed or erased, it keeps only its place in the thread."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from contextlib import nullcontext
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

from listserv.archive.placing import insert_placed, insert_threaded, neighbours
from listserv.archive.render import header_text, obfuscate, read_post, text_of
from listserv.archive.threading import Headers, message_ids, subject_key
from listserv.archive.words import index_text
from listserv.mail.addresses import InvalidAddress, normalize
from listserv.mail.codec import MAIL_POLICY, eight_bit_text, subject_of
from listserv.mail.headers import one_line
from listserv.store.lists import MailList
from listserv.store.models import (
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

    @property
    def headers(self) -> Headers:
        """What threading reads of the post."""
        columns = self.columns
        return Headers(
            self.message_id,
            columns["in_reply_to"],
            tuple(columns["references"].split()),
            columns["subject_key"],
            columns["date"],
        )


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
) -> int | None:
    """Archive *raw* (the post as distributed) for the list, in its thread; its id, None
    when a post with its Message-ID is archived already."""
    entry = archive_entry(raw, subject_prefix, now or utcnow(), poster)
    headers = entry.headers
    found = neighbours(session, list_id, headers)
    if found.archived:
        return None
    # The ORM's moves could fail halfway: a savepoint takes them back whole. The other way
    # has done all its reading and reckoning before it writes.
    with session.begin_nested() if found.adopts else nullcontext():
        if found.adopts:
            archived_id = insert_threaded(session, list_id, entry.columns)
        else:
            archived_id = insert_placed(session, list_id, entry.columns, headers, found)
        session.connection().execute(
            INSERT_WORDS, {"archived_id": archived_id, "list_id": list_id, "words": entry.words}
        )
        count_in_months(session, list_id, [headers.date])
    return archived_id


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


INSERT_WORDS = insert(ArchiveSearchText)
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
        archive_post(
            session, mlist.id, raw, subject_prefix=mlist.config.subject_prefix or "", poster=poster
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
