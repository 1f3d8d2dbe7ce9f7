"""The database schema: lists, members, the inbox of received mail, and the outbound queue.

The database is the queue between stages: intake writes ``messages``; the router turns each
into outgoing mail (``outgoing``) split into recipient batches (``deliveries``); delivery
workers claim batches. Claims name the claiming ``instances`` row, so work held by a process
that died is taken over by the others.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class MailingList(Base):
    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # Every other setting of the list (see ListConfig), so new settings need no migration.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("list_id", "address"),
        Index("ix_members_list_delivery", "list_id", "delivery"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    # Lower-case, with the domain in IDNA A-label form (xn--…).
    address: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    # regular | digest | plain | html | nomail
    delivery: Mapped[str] = mapped_column(String(16), default="regular")
    moderated: Mapped[bool] = mapped_column(Boolean, default=False)
    bounce_score: Mapped[float] = mapped_column(Float, default=0.0)
    # Set when delivery is stopped for a reason other than the member's choice (bounces).
    disabled_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    subscribed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Instance(Base):
    """A running ``serve`` process; its heartbeat keeps its claims valid."""

    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(Base):
    """A message received for one recipient address, committed before intake answers 250."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_status", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_to: Mapped[str] = mapped_column(String(320))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    # new → done | failed; claimed_by is set while a router works on it.
    status: Mapped[str] = mapped_column(String(16), default="new")
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What became of it: "distributed", "held: <rule>", "discarded: loop", an error…
    outcome: Mapped[str] = mapped_column(Text, default="")


class Outgoing(Base):
    """One message to send, stored once however many recipients it has."""

    __tablename__ = "outgoing"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int | None] = mapped_column(
        ForeignKey("lists.id", ondelete="SET NULL"), nullable=True
    )
    # post | digest | reply | notice | forward
    kind: Mapped[str] = mapped_column(String(16))
    mail_from: Mapped[str] = mapped_column(String(320))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The incoming message this was made from, if any.
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), nullable=True
    )


class Delivery(Base):
    """A batch of recipients of one outgoing message, sent in one SMTP transaction."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outgoing_id: Mapped[int] = mapped_column(ForeignKey("outgoing.id", ondelete="CASCADE"))
    # Newline-separated addresses.
    recipients: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer)
    # queued → sending → sent | failed; queued again (with next_attempt_at) after a 4xx.
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RecipientFailure(Base):
    """A recipient that could not be delivered to: refused with 5xx, or retried too long."""

    __tablename__ = "recipient_failures"
    __table_args__ = (Index("ix_recipient_failures_domain", "domain", "resent"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    outgoing_id: Mapped[int] = mapped_column(ForeignKey("outgoing.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))
    domain: Mapped[str] = mapped_column(String(255))
    code: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set once ``queue retry`` has queued it again.
    resent: Mapped[bool] = mapped_column(Boolean, default=False)


class HeldMessage(Base):
    """A post kept for a moderator's decision, with the rule that held it."""

    __tablename__ = "held_messages"
    __table_args__ = (Index("ix_held_messages_list_status", "list_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    sender: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text, default="")
    rule: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    held_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # pending → approved | rejected | discarded | expired
    status: Mapped[str] = mapped_column(String(16), default="pending")


class Token(Base):
    """A secret that authorises one action by mail: confirming a subscription, deciding a
    held post… Only its SHA-256 is stored, so a database leak confirms nothing."""

    __tablename__ = "tokens"
    __table_args__ = (Index("ix_tokens_list_address", "list_id", "address"),)

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    # Who may use it (the address being subscribed, the moderator asked…); "" for anyone
    # holding the token.
    address: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AutoReply(Base):
    """One mail the server wrote to an address on its own account (a command reply, a held
    notice), counted to cap how many one address gets a day (backscatter)."""

    __tablename__ = "auto_replies"
    __table_args__ = (Index("ix_auto_replies_address_sent", "address", "sent_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(320))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DigestState(Base):
    """A list's digest numbering and when its last issue went out."""

    __tablename__ = "digest_states"

    list_id: Mapped[int] = mapped_column(
        ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True
    )
    volume: Mapped[int] = mapped_column(Integer, default=1)
    # The number of the last issue of this volume; 0 before the first.
    issue: Mapped[int] = mapped_column(Integer, default=0)
    # The last issue's time; before the first, when the list started collecting.
    last_sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set by ``digest send --new-volume``: the next issue starts a new volume.
    new_volume: Mapped[bool] = mapped_column(Boolean, default=False)


class DigestEntry(Base):
    """A distributed post waiting for the list's next digest issue."""

    __tablename__ = "digest_entries"
    __table_args__ = (Index("ix_digest_entries_list", "list_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), nullable=True
    )
    # The post as members received it (after decoration).
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
