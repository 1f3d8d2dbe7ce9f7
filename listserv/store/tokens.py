"""Secret tokens that authorise an action requested by mail.

A token is 128+ bits from ``secrets``, handed out once (in a confirmation or moderation
request, as ``NAME-confirm+TOKEN@domain``), stored only as a hash, bound to a list, an action
and (usually) an address, single-use and expiring. What a token of each action does is the
table ``commands.confirm.ACTIONS``; the ``-confirm`` address and the ``confirm TOKEN`` command
both dispatch through it.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from listserv.store.models import Token, utcnow

TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


def secret_digest(token: str) -> str:
    """What is stored of a secret handed out by mail: its SHA-256, never the secret."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def issue(
    session: Session,
    list_id: int,
    action: str,
    *,
    address: str = "",
    payload: dict[str, Any] | None = None,
    ttl: timedelta,
) -> str:
    """Create a token; the plain value is returned once and never stored."""
    # Lower-case only (160 bits, base32): addresses are matched lower-cased all the way from
    # RCPT to the router, and some MTAs change the case of local parts.
    token = base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=").lower()
    session.add(
        Token(
            digest=secret_digest(token),
            list_id=list_id,
            address=address,
            action=action,
            payload=payload or {},
            expires_at=utcnow() + ttl,
        )
    )
    session.flush()
    return token


def lookup(session: Session, list_id: int, token: str) -> Token | None:
    """The live token (unused, unexpired, of this list), without using it up."""
    if not TOKEN_SHAPE.match(token):
        return None
    row = session.get(Token, secret_digest(token.lower()), with_for_update=True)
    if row is None or row.list_id != list_id or row.used_at is not None:
        return None
    if row.expires_at <= utcnow():
        return None
    return row


def use(row: Token) -> None:
    row.used_at = utcnow()
