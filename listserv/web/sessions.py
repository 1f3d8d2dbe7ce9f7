"""Who is signed in: a random session cookie whose SHA-256 names a ``web_sessions`` row.

The ``Visitors`` middleware reads the cookie once per request and puts the signed-in address
in ``scope["visitor"]``, where every route finds it (``current_address``, and the archive
pages through ``pages.visitor_of``). It also gives each browser a random ``csrf`` cookie, the
anchor of the CSRF tokens of visitors who are not signed in (web/csrf.py).
"""

from __future__ import annotations

import asyncio
from http.cookies import SimpleCookie

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from listserv.app import App
from listserv.store.portal import SESSION_LIFETIME, new_secret, session_address
from listserv.web.pages import visitor_of

SESSION_COOKIE = "session"
ANCHOR_COOKIE = "csrf"


def current_address(request: Request) -> str | None:
    """The signed-in address, None for anyone else."""
    return visitor_of(request)


def secure_cookies(app: App) -> bool:
    """Cookies are ``Secure`` when the portal is seen over https."""
    web = app.config.web
    return bool(web and web.base_url.startswith("https://"))


def cookie_header(name: str, value: str, secure: bool, max_age: int) -> str:
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Lax", f"Max-Age={max_age}"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def set_session_cookie(app: App, response: Response, token: str) -> None:
    max_age = int(SESSION_LIFETIME.total_seconds())
    header = cookie_header(SESSION_COOKIE, token, secure_cookies(app), max_age)
    response.headers.append("set-cookie", header)


def clear_session_cookie(app: App, response: Response) -> None:
    response.headers.append("set-cookie", cookie_header(SESSION_COOKIE, "", secure_cookies(app), 0))


def cookies_of(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is no cookie
                continue
    return {key: morsel.value for key, morsel in jar.items()}


class Visitors:
    """Puts the signed-in address (or None) and the CSRF anchor into each request's scope."""

    def __init__(self, asgi: ASGIApp, app: App) -> None:
        self.asgi = asgi
        self.app = app

    def address_of(self, token: str) -> str | None:
        with self.app.sessions() as session:
            return session_address(session, token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The API authenticates each call by its key: no cookies there.
        if scope["type"] != "http" or scope["path"].startswith("/api/"):
            await self.asgi(scope, receive, send)
            return
        cookies = cookies_of(scope)
        token = cookies.get(SESSION_COOKIE, "")
        visitor = await asyncio.to_thread(self.address_of, token) if token else None
        scope["visitor"] = visitor
        scope["session_token"] = token if visitor else ""
        anchor = cookies.get(ANCHOR_COOKIE, "")
        new_anchor = "" if len(anchor) >= 32 else new_secret()
        scope["csrf_anchor"] = new_anchor or anchor
        if not new_anchor:
            await self.asgi(scope, receive, send)
            return
        header = cookie_header(ANCHOR_COOKIE, new_anchor, secure_cookies(self.app), 365 * 86400)

        async def with_anchor(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"set-cookie", header.encode("latin-1")),
                ]
            await send(message)

        await self.asgi(scope, receive, with_anchor)
