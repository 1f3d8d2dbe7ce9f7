"""Sessions and CSRF for the portal.

The session is Starlette's signed cookie (itsdangerous, HMAC under ``[web] secret_file``):
``HttpOnly``, ``SameSite=Lax``, and ``Secure`` when ``base_url`` is https. It holds the
signed-in address and the CSRF token every POST form carries (sign-in links are the only
authority that creates a signed-in session).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs

from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request

from listserv.app import App
from listserv.auth.one_click import load_secret

SESSION_COOKIE = "listserv_session"
SESSION_DAYS = 14
MAX_FORM_BYTES = 64 * 1024


def session_middleware(app: App) -> Middleware:
    web = app.config.web
    assert web is not None
    secret = load_secret(app.config.resolve(web.secret_file))
    return Middleware(
        SessionMiddleware,
        # Its own key derived from the secret, so a session cookie is never a valid link.
        secret_key=hmac.new(secret, b"listserv session", "sha256").hexdigest(),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_DAYS * 24 * 3600,
        same_site="lax",
        https_only=web.base_url.startswith("https://"),
    )


def visitor_of(request: Request) -> str | None:
    """The signed-in address, None for anyone else."""
    if "session" not in request.scope:
        return None
    address = request.session.get("address")
    return address if isinstance(address, str) else None


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def checked_form(request: Request) -> dict[str, str] | None:
    """The fields of a POSTed form (``application/x-www-form-urlencoded``), or None when its
    CSRF token is missing or not the session's."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return None
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return None
    form = {key: values[0] for key, values in fields.items()}
    expected = request.session.get("csrf") if "session" in request.scope else None
    if not isinstance(expected, str) or not hmac.compare_digest(form.get("csrf", ""), expected):
        return None
    return form


def sign_in(request: Request, address: str) -> None:
    """A fresh session for *address* (nothing of the anonymous one is kept)."""
    request.session.clear()
    request.session["address"] = address
    request.session["csrf"] = secrets.token_urlsafe(32)


def sign_out(request: Request) -> None:
    request.session.clear()
