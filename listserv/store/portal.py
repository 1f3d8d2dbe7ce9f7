"""What the portal keeps: signed-in sessions, single-use sign-in links and the requests that
count against a rate limit. Secrets handed to a browser or mailed are stored as SHA-256 only,
so a copy of the database signs nobody in.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import Text, cast, delete, func, select
from sqlalchemy.orm import Session

from listserv.store.models import (
    ArchivedMessage,
    HeldMessage,
    MailingList,
    Member,
    SignInLink,
    Token,
    WebAttempt,
    WebSession,
    utcnow,
)
from listserv.store.tokens import TOKEN_SHAPE, secret_digest

SIGN_IN_LINK_LIFETIME = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(days=30)


def new_secret() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def create_session(session: Session, address: str) -> str:
    token = new_secret()
    session.add(
        WebSession(
            digest=secret_digest(token), address=address, expires_at=utcnow() + SESSION_LIFETIME
        )
    )
    return token


def session_address(session: Session, token: str) -> str | None:
    """The address signed in with *token*, while the session lasts."""
    row = session.get(WebSession, secret_digest(token))
    if row is None or row.expires_at <= utcnow():
        return None
    return row.address


def end_session(session: Session, token: str) -> None:
    session.execute(delete(WebSession).where(WebSession.digest == secret_digest(token)))


def create_sign_in_link(session: Session, address: str) -> str:
    token = new_secret()
    session.add(
        SignInLink(
            digest=secret_digest(token),
            address=address,
            expires_at=utcnow() + SIGN_IN_LINK_LIFETIME,
        )
    )
    return token


def live_sign_in_link(session: Session, token: str, lock: bool = False) -> SignInLink | None:
    """The unused, unexpired link for *token*, without using it."""
    row = session.get(SignInLink, secret_digest(token), with_for_update=lock)
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        return None
    return row


def attempts_since(session: Session, kind: str, subject: str, since: datetime) -> int:
    query = select(func.count()).where(
        WebAttempt.kind == kind, WebAttempt.subject == subject, WebAttempt.at > since
    )
    return session.scalar(query) or 0


def within_limit(session: Session, kind: str, subject: str, per_hour: int) -> bool:
    """Record one attempt of *kind* by *subject*; False once it had *per_hour* in the last
    hour (the refused attempt is not recorded, so waiting always helps)."""
    if attempts_since(session, kind, subject, utcnow() - timedelta(hours=1)) >= per_hour:
        return False
    session.add(WebAttempt(kind=kind, subject=subject[:400]))
    return True


def prune_portal(session: Session, now: datetime) -> int:
    """Forget expired sessions and links, and attempts older than a day; returns how many."""
    statements = (
        delete(WebSession).where(WebSession.expires_at <= now),
        delete(SignInLink).where(SignInLink.expires_at <= now),
        delete(WebAttempt).where(WebAttempt.at <= now - timedelta(days=1)),
    )
    options = {"synchronize_session": False}
    return sum(session.execute(s.execution_options(**options)).rowcount for s in statements)  # type: ignore[attr-defined]


def memberships(session: Session, address: str) -> list[tuple[str, Member]]:
    """(list name, member row) of every list *address* is on, by list name."""
    query = (
        select(MailingList.name, Member)
        .join(Member, Member.list_id == MailingList.id)
        .where(Member.address == address)
        .order_by(MailingList.name)
    )
    return [(name, member) for name, member in session.execute(query)]


def is_member_anywhere(session: Session, address: str) -> bool:
    return session.scalar(select(Member.id).where(Member.address == address).limit(1)) is not None


def list_of_token(session: Session, token: str) -> int | None:
    """The list a mailed token belongs to (``/confirm/TOKEN`` names no list)."""
    if not TOKEN_SHAPE.match(token):
        return None
    row = session.get(Token, secret_digest(token.lower()))
    return row.list_id if row is not None else None


def roster_page(
    session: Session, list_id: int, search: str = "", after: str = "", limit: int = 50
) -> list[Member]:
    """Up to *limit* members of the list by address, after the address *after* (a cursor,
    so a page costs the same on the last page of 100,000 as on the first), containing
    *search* when given."""
    query = select(Member).where(Member.list_id == list_id)
    if search:
        escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Member.address.like(f"%{escaped}%", escape="\\"))
    if after:
        query = query.where(Member.address > after)
    return list(session.scalars(query.order_by(Member.address).limit(limit)))


def list_names_page(
    session: Session, allowed: list[str] | None, offset: int, limit: int
) -> list[str]:
    """Names of lists in name order, a page at a time, only *allowed* ones when given."""
    query = select(MailingList.name).order_by(MailingList.name)
    if allowed is not None:
        query = query.where(MailingList.name.in_(allowed))
    return list(session.scalars(query.offset(offset).limit(limit)))


def held_page(session: Session, list_id: int, after_id: int, limit: int) -> list[HeldMessage]:
    """Pending held posts of the list by id, after *after_id*."""
    query = (
        select(HeldMessage)
        .where(
            HeldMessage.list_id == list_id,
            HeldMessage.status == "pending",
            HeldMessage.id > after_id,
        )
        .order_by(HeldMessage.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def archive_page(
    session: Session, list_id: int, before_id: int | None, limit: int
) -> list[ArchivedMessage]:
    """Archived posts of the list, newest first (by id), before *before_id* when given."""
    query = select(ArchivedMessage).where(ArchivedMessage.list_id == list_id)
    if before_id is not None:
        query = query.where(ArchivedMessage.id < before_id)
    return list(session.scalars(query.order_by(ArchivedMessage.id.desc()).limit(limit)))


def list_settings(session: Session) -> list[tuple[str, dict]]:
    """Every list's name and stored settings, by name, unvalidated: what the directory and
    ``/me`` read of 1,000 lists, without building 1,000 ListConfigs."""
    query = select(MailingList.name, MailingList.settings).order_by(MailingList.name)
    return [(name, settings or {}) for name, settings in session.execute(query)]


def settings_naming(session: Session, address: str) -> list[tuple[str, dict]]:
    """The name and settings of the lists whose settings mention *address* anywhere (a
    cheap text match, for the caller to check the exact role): a moderator's or owner's
    lists without reading every list's settings."""
    escaped = address.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = (
        select(MailingList.name, MailingList.settings)
        .where(cast(MailingList.settings, Text).like(f"%{escaped}%", escape="\\"))
        .order_by(MailingList.name)
    )
    return [(name, settings or {}) for name, settings in session.execute(query)]
