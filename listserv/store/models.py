"""The database schema: lists, members, the inbox of received mail, and the outbound queue.

The database is the queue between stages: intake writes ``messages``; the router turns each
into outgoing mail (``outgoing``) split into recipient batches (``deliveries``); delivery
workers claim batches. Claims name the claiming ``instances`` row, so work held by a process
that died is taken over by the others.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

# The archive's and the portal's tables live in modules of their own; importing them here puts
# every table in ``Base.metadata`` (migrations compare against it) and keeps one import path.
from listserv.store.archive_models import (  # noqa: F401
    ArchiveAwaited,
    ArchivedMessage,
    ArchiveMonth,
    ArchiveSearchText,
    described_by_models,
)
from listserv.store.base import Base, UTCDateTime, utcnow
from listserv.store.portal_models import ApiKey, SignInLink, WebAttempt, WebSession  # noqa: F401


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
        # Bounce upkeep looks only at members with a probe out, a score, or disabled.
        Index("ix_members_list_probe", "list_id", "probe_sent_at"),
        Index("ix_members_list_score", "list_id", "bounce_score"),
        Index("ix_members_list_disabled", "list_id", "disabled_reason", "last_warning_at"),
        # The portal's /me and sign-in look an address up across every list.
        Index("ix_members_address", "address"),
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
    # Bounce processing (bounces/actions.py): when the score last rose, the probe sent before
    # disabling (SHA-256 of its token), and the warnings sent since delivery was disabled.
    last_bounce_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    probe_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    probe_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    bounce_warnings: Mapped[int] = mapped_column(Integer, default=0)
    last_warning_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Instance(Base):
    """A running ``serve`` process; its heartbeat keeps its claims valid."""

    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # How many times it has beaten: the others judge it alive by this changing, each by its
    # own clock, never by comparing times written on different hosts (claims.Watch).
    beats: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ReceivedBody(Base):
    """The bytes of one received SMTP transaction, stored once however many of our addresses
    it named; each recipient has a ``messages`` row of its own that refers to them. Deleted
    with the last of those rows (housekeeping)."""

    __tablename__ = "received_bodies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)


class InboxMessage(Base):
    """A message received for one recipient address, committed before intake answers 250."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_status", "status", "id"),
        Index("ix_messages_received", "received_at"),
        # Housekeeping asks whether a body has messages left.
        Index("ix_messages_body", "body_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_to: Mapped[str] = mapped_column(String(320))
    body_id: Mapped[int] = mapped_column(ForeignKey("received_bodies.id"))
    # Loaded only when ``raw`` is read: listing or claiming messages leaves the bytes alone.
    body: Mapped[ReceivedBody] = relationship(lazy="select")
    # new → done | failed; claimed_by is set while a router works on it.
    status: Mapped[str] = mapped_column(String(16), default="new")
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What became of it: "distributed", "held: <rule>", "discarded: loop", an error…
    outcome: Mapped[str] = mapped_column(Text, default="")
    # The SMTP client that handed it over, for the SPF check (None for injected mail).
    peer_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    helo: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Attempts that failed on a database error, and when the next one is due (intake/inbox).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What the DKIM, SPF and DMARC checks found (auth/authentication.py), worked out once,
    # outside any transaction, and kept for a held post's approval.
    authentication: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    @property
    def raw(self) -> bytes:
        """The message as received (its body's bytes, shared with the transaction's other
        recipients). Queries join ``ReceivedBody`` for them."""
        return self.body.raw

    @raw.setter
    def raw(self, raw: bytes) -> None:
        self.body = ReceivedBody(raw=raw, size=len(raw))


class Outgoing(Base):
    """One message to send, stored once however many recipients it has."""

    __tablename__ = "outgoing"
    # Housekeeping deletes by age, and by the message it was made from.
    __table_args__ = (
        Index("ix_outgoing_created", "created_at"),
        Index("ix_outgoing_message", "message_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int | None] = mapped_column(
        ForeignKey("lists.id", ondelete="SET NULL"), nullable=True
    )
    # post | digest | reply | notice | token (carries a live token) | forward | probe
    kind: Mapped[str] = mapped_column(String(16))
    mail_from: Mapped[str] = mapped_column(String(320))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The incoming message this was made from, if any.
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), nullable=True
    )
    # Sent as one message per recipient, each with its own headers and envelope sender
    # (personalize.py); footer_marker stands in the body where each member's link goes.
    personalized: Mapped[bool] = mapped_column(Boolean, default=False)
    footer_marker: Mapped[str] = mapped_column(String(64), default="")


class Delivery(Base):
    """A batch of recipients of one outgoing message, sent in one SMTP transaction."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        # Deleting an outgoing message deletes its deliveries (ON DELETE CASCADE).
        Index("ix_deliveries_outgoing", "outgoing_id"),
    )

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
    __table_args__ = (
        Index("ix_recipient_failures_domain", "domain", "resent"),
        Index("ix_recipient_failures_outgoing", "outgoing_id"),
    )

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
    __table_args__ = (
        Index("ix_held_messages_list_status", "list_id", "status"),
        Index("ix_held_messages_message", "message_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    sender: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text, default="")
    rule: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    held_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # pending → approved | rejected | discarded | expired | withdrawn
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # The decision: when, by whom (an address, or the operator at the command line), how
    # ("mail", "cli", "expiry") and the reason given with a rejection.
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str] = mapped_column(String(400), default="")
    decided_via: Mapped[str] = mapped_column(String(16), default="")
    decision_reason: Mapped[str] = mapped_column(Text, default="")
    # When the moderators were last reminded of it (daily summary).
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


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


class PosterAlias(Base):
    """An address at the list domain standing for a poster whose From had to be rewritten
    (DMARC): ``NAME+p-ALIAS@domain`` forwards private replies to that poster only."""

    __tablename__ = "poster_aliases"
    __table_args__ = (UniqueConstraint("list_id", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    # 160 random bits, base32 lower-case (local parts are matched lower-cased).
    alias: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AcceptedSender(Base):
    """An address whose posts skip the list's posting policy ("approve always" for a
    non-member, or on a moderated list)."""

    __tablename__ = "accepted_senders"
    __table_args__ = (UniqueConstraint("list_id", "address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))
    added_by: Mapped[str] = mapped_column(String(400), default="")
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PostRecord(Base):
    """One post accepted or held for a list, counted for the daily caps; rows older than the
    counting window are pruned."""

    __tablename__ = "post_log"
    __table_args__ = (
        Index("ix_post_log_list_time", "list_id", "posted_at"),
        Index("ix_post_log_list_sender_time", "list_id", "sender", "posted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    sender: Mapped[str] = mapped_column(String(320))
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MemberEvent(Base):
    """What happened to a member's mail: a bounce, a refusal at delivery, a complaint (feedback
    report), a one-click unsubscribe. Kept for the operator; scores live on the member."""

    __tablename__ = "member_events"
    __table_args__ = (
        Index("ix_member_events_list_address", "list_id", "address"),
        Index("ix_member_events_message", "message_id"),
        Index("ix_member_events_received", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))
    # hard | soft | policy | delayed | unrecognised | complaint | unsubscribe | removed
    kind: Mapped[str] = mapped_column(String(16))
    # What it did: "score 2.0", "ignored: scored today", "probe bounced: disabled"…
    outcome: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(32), default="")
    diagnostic: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The received bounce or report, when there was one (none for a refusal at delivery).
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), nullable=True
    )


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
    __table_args__ = (
        Index("ix_digest_entries_list", "list_id", "id"),
        Index("ix_digest_entries_message", "message_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), nullable=True
    )
    # The post as members received it (after decoration).
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScheduledRun(Base):
    """When a periodic job shared by all ``serve`` processes (bounce upkeep) last ran, so
    that one process at a time runs it, once per interval (turns.py)."""

    __tablename__ = "scheduled_runs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime)
