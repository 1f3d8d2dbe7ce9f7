"""One-click unsubscribe links (RFC 8058): a per-member signed token in a URL.

A token is the list name and member address, readable, followed by an HMAC-SHA256 of them
under the server's secret (``[web] secret_file``). It needs no database row, cannot be made
for another member without the secret, and is checked in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
from collections.abc import Callable
from functools import cache
from pathlib import Path

from sqlalchemy.orm import Session

from listserv.auth.keyed import hmac_sha256
from listserv.config import Config
from listserv.store.members import remove_member
from listserv.store.models import MemberEvent

SIGNATURE_BYTES = 20  # 160 bits
DOMAIN_SEPARATOR = b"listserv unsubscribe\0"


@cache
def load_secret(path: Path) -> bytes:
    """The server's HMAC key, created (mode 0600) on first use."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it meanwhile
            return load_secret.__wrapped__(path)
        text = secrets.token_hex(32)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text + "\n")
    if len(text) < 32:
        raise ValueError(f"{path}: the web secret is too short")
    return text.encode("ascii")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, payload: bytes) -> bytes:
    return hmac_sha256(secret)(DOMAIN_SEPARATOR + payload)[:SIGNATURE_BYTES]


def make_token(secret: bytes, list_name: str, address: str) -> str:
    payload = f"{list_name}\n{address}".encode()
    return f"{_b64(payload)}.{_b64(_signature(secret, payload))}"


def read_token(secret: bytes, token: str) -> tuple[str, str] | None:
    """(list name, address) of a genuine token; None for anything forged or malformed."""
    encoded, _, signature = token.partition(".")
    try:
        payload = _unb64(encoded)
        given = _unb64(signature)
        list_name, _, address = payload.decode().partition("\n")
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(given, _signature(secret, payload)) or not address:
        return None
    return list_name, address


def link_maker(config: Config) -> Callable[[str, str], str] | None:
    """``(list name, address) → URL`` when one-click unsubscribe is configured."""
    web = config.web
    if web is None or not web.base_url:
        return None
    secret = load_secret(config.resolve(web.secret_file))
    base = web.base_url.rstrip("/") + "/u/"
    return lambda list_name, address: base + make_token(secret, list_name, address)


def unsubscribe_by_link(session: Session, list_id: int, address: str, how: str) -> bool:
    """Remove the member at once (they asked with their own signed link); False when they
    were no longer a member."""
    if not remove_member(session, list_id, address):
        return False
    session.add(MemberEvent(list_id=list_id, address=address, kind="unsubscribe", outcome=how))
    return True
