"""Keys of the REST API: random, shown once when created, stored as SHA-256, scoped to lists
(none named: every list), read-only if asked, revocable by name."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from listserv.store.models import ApiKey, utcnow
from listserv.store.tokens import secret_digest

KEY_PREFIX = "lsk_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ApiKeyError(ValueError):
    pass


def create_api_key(session: Session, name: str, lists: list[str], read_only: bool) -> str:
    """Store a new key named *name*; the key itself is returned once and never stored."""
    if not NAME.match(name):
        raise ApiKeyError(f"not a valid key name: {name!r} (letters, digits, '.', '_', '-')")
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise ApiKeyError(f"an API key named {name!r} exists already")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(name=name, digest=secret_digest(key), lists=sorted(set(lists)), read_only=read_only)
    )
    session.flush()
    return key


def api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.name)))


def revoke_api_key(session: Session, name: str) -> None:
    row = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if row is None:
        raise ApiKeyError(f"no API key named {name!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()


def key_holder(session: Session, key: str) -> ApiKey | None:
    """The live key row for a presented *key*."""
    if not key.startswith(KEY_PREFIX) or len(key) > 100:
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.digest == secret_digest(key)))
    return row if row is not None and row.revoked_at is None else None
