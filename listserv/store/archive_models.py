"""The archive's tables: posts as distributed, and the words search reads (the full-text
index itself is made by hand in migration 0007_archive, see ``described_by_models``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from listserv.store.base import Base, UTCDateTime, utcnow


class ArchivedMessage(Base):
    """A distributed (or imported) post as the archive keeps it: the bytes as distributed,
    and what pages, threads and feeds need without parsing them again. A removed or erased
    post keeps its row (threads show where it was) but neither its bytes nor its sender."""

    __tablename__ = "archived_messages"
    __table_args__ = (
        UniqueConstraint("list_id", "message_id"),
        # A month's posts and threads are counted and grouped from this index alone.
        Index("ix_archived_messages_list_date_thread", "list_id", "date", "thread_id"),
        Index("ix_archived_messages_thread", "thread_id", "date"),
        Index("ix_archived_messages_list_subject", "list_id", "subject_key", "date"),
        Index("ix_archived_messages_list_reply", "list_id", "in_reply_to"),
        Index("ix_archived_messages_sender", "sender_address"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    # The Message-ID without <>.
    message_id: Mapped[str] = mapped_column(String(500))
    # The id of the thread's first post, and of the post this one answers.
    thread_id: Mapped[int] = mapped_column(Integer, default=0)
    parent_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # What threading reads: the answered Message-ID, the References (space-separated, oldest
    # first) and the subject without reply markers and list prefix, lower-cased.
    in_reply_to: Mapped[str] = mapped_column(String(500), default="")
    references: Mapped[str] = mapped_column(Text, default="")
    subject_key: Mapped[str] = mapped_column(String(500), default="")
    date: Mapped[datetime] = mapped_column(UTCDateTime)
    archived_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sender_name: Mapped[str] = mapped_column(String(200), default="")
    # "a…@e….com": what visitors who are not members of the list see.
    sender_obfuscated: Mapped[str] = mapped_column(String(320), default="")
    sender_address: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    size: Mapped[int] = mapped_column(Integer, default=0)
    # None once removed or erased.
    raw: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    removed_reason: Mapped[str] = mapped_column(Text, default="")


class ArchiveSearchText(Base):
    """The words of an archived post, stemmed (archive/words.py), as the full-text index reads
    them: an FTS5 table fed by triggers on SQLite, a generated tsvector column with a GIN
    index on PostgreSQL (migration 0007_archive)."""

    __tablename__ = "archive_search"
    __table_args__ = (Index("ix_archive_search_list", "list_id"),)

    archived_id: Mapped[int] = mapped_column(
        ForeignKey("archived_messages.id", ondelete="CASCADE"), primary_key=True
    )
    list_id: Mapped[int] = mapped_column(Integer)
    words: Mapped[str] = mapped_column(Text, default="")


class ArchiveMonth(Base):
    """How many posts a list archived in a month (YYYY-MM, UTC), removed ones included, as
    the archive's index shows them: counting a million posts at every visit takes a second."""

    __tablename__ = "archive_months"

    list_id: Mapped[int] = mapped_column(
        ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True
    )
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    posts: Mapped[int] = mapped_column(Integer, default=0)


class ArchiveAwaited(Base):
    """A Message-ID an archived post names as its parent (In-Reply-To, References) that the
    list's archive lacks: when that post is archived, it finds the posts awaiting it here,
    by index, instead of reading every recent post's References."""

    __tablename__ = "archive_awaited"
    __table_args__ = (Index("ix_archive_awaited_message", "list_id", "message_id"),)

    archived_id: Mapped[int] = mapped_column(
        ForeignKey("archived_messages.id", ondelete="CASCADE"), primary_key=True
    )
    message_id: Mapped[str] = mapped_column(String(500), primary_key=True)
    list_id: Mapped[int] = mapped_column(Integer)


def described_by_models(
    obj: Any, name: str | None, type_: str, reflected: bool, _other: Any
) -> bool:
    """Alembic's filter: the full-text index of the archive (``archive_fts`` and its shadow
    tables on SQLite; the generated ``words_vector`` column and its GIN index on PostgreSQL)
    is made by hand in migration 0007_archive and has no model, so it is no difference."""
    made_by_hand = (name or "").startswith(("archive_fts", "ix_archive_search_words"))
    made_by_hand |= name == "words_vector"
    return not (reflected and made_by_hand and type_ in ("table", "index", "column"))
