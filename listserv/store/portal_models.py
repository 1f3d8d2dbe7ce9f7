"""The portal's tables: sessions, sign-in links, rate-limit attempts and API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from listserv.store.base import Base, UTCDateTime, utcnow


class WebSession(Base):
    """A signed-in browser (web/sessions.py): only the SHA-256 of its cookie is stored."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_address", "address"),)

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SignInLink(Base):
    """A single-use sign-in link mailed to an address (``/login/TOKEN``), stored hashed."""

    __tablename__ = "sign_in_links"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebAttempt(Base):
    """One rate-limited request (a sign-in or subscription asked for), by what it counts
    against: ``address:…`` or ``client:…``."""

    __tablename__ = "web_attempts"
    __table_args__ = (Index("ix_web_attempts_kind_subject", "kind", "subject", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(400))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(Base):
    """A key of the REST API (``listserv api-key``): its SHA-256, never the key."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    # The names of the lists it may touch; empty for every list.
    lists: Mapped[list[str]] = mapped_column(JSON, default=list)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
