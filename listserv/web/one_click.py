"""One-click unsubscribe links (RFC 8058), part of the portal (web/app.py).

``POST /u/TOKEN`` unsubscribes the member the token names, at once: that is what mail
providers send when a member presses their "Unsubscribe" button. ``GET /u/TOKEN`` only shows a
page, in the list's language, with a button that POSTs: link scanners and previews fetch URLs
with GET and must never unsubscribe anyone.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from listserv.app import App
from listserv.auth.one_click import load_secret, read_token, unsubscribe_by_link
from listserv.store.db import transaction
from listserv.store.lists import UnknownList, get_list

log = logging.getLogger(__name__)
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


def one_click_routes(app: App) -> list[Route]:
    assert app.config.web is not None
    secret = load_secret(app.config.resolve(app.config.web.secret_file))

    def page(language: str, status: int = 200, **context: object) -> HTMLResponse:
        html = app.templates.text(language, "unsubscribe.html", **context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def list_language(list_name: str) -> str | None:
        try:
            with app.sessions() as session:
                return get_list(session, list_name, app.domain).config.language
        except UnknownList:
            return None

    def unsubscribe(list_name: str, address: str) -> bool:
        with transaction(app.sessions) as session:
            mlist = get_list(session, list_name, app.domain)
            return unsubscribe_by_link(session, mlist.id, address, "one-click link")

    async def one_click(request: Request) -> HTMLResponse:
        named = read_token(secret, request.path_params["token"])
        language = await asyncio.to_thread(list_language, named[0]) if named else None
        if named is None or language is None:
            return page("en", 404, state="invalid")
        list_name, address = named
        list_address = f"{list_name}@{app.domain}"
        if request.method != "POST":
            # GET and HEAD (Starlette answers HEAD on a GET route; link scanners send it)
            # only show the page: nothing but the provider's POST may unsubscribe.
            return page(language, state="confirm", address=address, list_address=list_address)
        removed = await asyncio.to_thread(unsubscribe, list_name, address)
        log.info("one-click unsubscribe of %s from %s: %s", address, list_name, removed)
        state = "done" if removed else "not-member"
        return page(language, state=state, address=address, list_address=list_address)

    return [Route("/u/{token}", one_click, methods=["GET", "POST"])]
