"""CSRF tokens: every form carries ``csrf``, an HMAC of the browser's anchor (the session
cookie when signed in, else the random ``csrf`` cookie) under the portal's secret. A page on
another site can make a browser POST, but cannot read the cookie to compute the token.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl

from starlette.requests import Request

FIELD = "csrf"
MAX_FORM_BYTES = 64 * 1024


class FormTooLarge(ValueError):
    pass


def csrf_token(request: Request, secret: bytes) -> str:
    anchor = request.scope.get("session_token") or request.scope.get("csrf_anchor", "")
    return hmac.new(secret, b"csrf:" + anchor.encode(), hashlib.sha256).hexdigest()


def valid_csrf(request: Request, form: dict[str, str], secret: bytes) -> bool:
    given = form.get(FIELD, "")
    return bool(given) and hmac.compare_digest(given, csrf_token(request, secret))


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body (what every portal form sends), the last
    value of each field kept."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormTooLarge("form too large")
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
