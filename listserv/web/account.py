"""Routes of the visitor's account: ``/login`` (form, and the mail with a link),
``/login/TOKEN`` (GET shows a button, POST signs in: link scanners fetch with GET), ``/logout``.
Every POST carries the session's CSRF token."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from listserv.app import App
from listserv.mail.addresses import InvalidAddress, normalize
from listserv.store.db import transaction
from listserv.store.lists import list_by_id
from listserv.web.pages import Pages, public_base
from listserv.web.sessions import checked_form, csrf_token, sign_in, sign_out
from listserv.web.signin import ClientLimit, live_sign_in, redeem_sign_in, request_sign_in


def account_routes(app: App, pages: Pages) -> list[Route]:
    limit = ClientLimit()

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return pages.page(request, "login.html", state="form", csrf=csrf_token(request))
        form = await checked_form(request)
        if form is None:
            return pages.page(request, "login.html", 403, state="expired")
        client = request.client.host if request.client else ""
        if not limit.allow(client):
            return pages.page(request, "login.html", 429, state="too-many")
        try:
            address = normalize(form.get("address", "").strip())
        except InvalidAddress:
            address = ""
        if address:
            link_base = public_base(app, request)

            def send() -> None:
                with transaction(app.sessions) as session:
                    request_sign_in(app, session, address, lambda t: f"{link_base}/login/{t}")

            await asyncio.to_thread(send)
        return pages.page(request, "login.html", state="sent")

    def pending(token: str) -> str | None:
        with app.sessions() as session:
            row = live_sign_in(session, token)
            return row.address if row else None

    def redeem(token: str) -> tuple[str, str] | None:
        with transaction(app.sessions) as session:
            row = redeem_sign_in(session, token)
            if row is None:
                return None
            return row.address, list_by_id(session, row.list_id, app.domain).name

    async def login_link(request: Request) -> Response:
        token = request.path_params["token"]
        if request.method == "GET":
            address = await asyncio.to_thread(pending, token)
            if address is None:
                return pages.page(request, "login.html", 404, state="invalid")
            return pages.page(
                request, "login.html", state="confirm", address=address, csrf=csrf_token(request)
            )
        if await checked_form(request) is None:
            return pages.page(request, "login.html", 403, state="expired")
        redeemed = await asyncio.to_thread(redeem, token)
        if redeemed is None:
            return pages.page(request, "login.html", 404, state="invalid")
        address, list_name = redeemed
        sign_in(request, address)
        return RedirectResponse(
            f"{request.scope.get('root_path', '')}/lists/{list_name}/archive/", 303
        )

    async def logout(request: Request) -> Response:
        if await checked_form(request) is not None:
            sign_out(request)
        return RedirectResponse(f"{request.scope.get('root_path', '')}/login", 303)

    return [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/login/{token}", login_link, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
