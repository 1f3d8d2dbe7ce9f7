"""Signing in by mail and a member's own settings.

``POST /login`` mails a single-use link ``/login/TOKEN`` (15 minutes) to an address the server
knows (a member, moderator, owner or admin), through the outbound queue like every mail; the
answer is the same for any address, so the page tells nobody who is subscribed. ``GET`` of the
link only shows a button: mail scanners fetch links, and must not use them up. ``/me`` shows
the signed-in address's subscriptions, changed through the same functions as by mail.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from listserv.commands.subscriptions import set_delivery, unsubscribe
from listserv.delivery.outbound import queue_mail
from listserv.mail.addresses import InvalidAddress, normalize
from listserv.store.db import transaction
from listserv.store.lists import UnknownList, get_list
from listserv.store.models import utcnow
from listserv.store.portal import (
    SIGN_IN_LINK_LIFETIME,
    create_session,
    create_sign_in_link,
    end_session,
    is_member_anywhere,
    live_sign_in_link,
    memberships,
    within_limit,
)
from listserv.web.directory import entries, managed_by
from listserv.web.pages import choose_language
from listserv.web.portal import Portal, client_of
from listserv.web.sessions import clear_session_cookie, current_address, set_session_cookie

log = logging.getLogger(__name__)
# Sign-in links asked for in an hour.
SIGN_INS_PER_ADDRESS = 5
SIGN_INS_PER_CLIENT = 20
MEMBER_MODES = ("regular", "digest", "plain", "nomail")


def account_routes(portal: Portal) -> list[Route]:
    app = portal.app

    def known(session: Session, address: str) -> bool:
        if portal.is_admin(address) or is_member_anywhere(session, address):
            return True
        return bool(managed_by(session, app.domain, address))

    def mail_link(address: str, client: str, base: str, language: str) -> bool:
        """False when the client asked too often; the address's own limit is silent."""
        with transaction(app.sessions) as session:
            if not within_limit(session, "sign-in", f"client:{client}", SIGN_INS_PER_CLIENT):
                return False
            if not within_limit(session, "sign-in", f"address:{address}", SIGN_INS_PER_ADDRESS):
                return True
            if not known(session, address):
                return True
            token = create_sign_in_link(session, address)
            minutes = int(SIGN_IN_LINK_LIFETIME.total_seconds() // 60)
            sender = f"noreply@{app.domain}"
            message = app.templates.mail(
                language,
                "sign_in.txt",
                sender=sender,
                to=address,
                domain=app.domain,
                address=address,
                url=f"{base}/login/{token}",
                minutes=minutes,
            )
            message["Auto-Submitted"] = "auto-generated"
            queue_mail(
                session,
                kind="notice",
                mail_from=sender,
                message=message,
                recipients=[address],
                batch_size=1,
                signer=app.signer,
            )
            return True

    def login_form(request: Request) -> Response:
        if current_address(request):
            return RedirectResponse("/me", status_code=303)
        return portal.page(request, "login.html")

    async def login(request: Request) -> Response:
        form = await portal.form(request)
        if isinstance(form, Response):
            return form
        try:
            address = normalize(form.get("address", ""))
        except InvalidAddress:
            return portal.page(request, "login.html", status=400, error="invalid_address")
        base, language = portal.base_url(request), choose_language(request)
        sent = await asyncio.to_thread(mail_link, address, client_of(request), base, language)
        if not sent:
            return portal.message(request, "too_many", status=429)
        return portal.message(request, "sign_in_sent")

    def link_page(request: Request) -> Response:
        with app.sessions() as session:
            row = live_sign_in_link(session, request.path_params["token"])
        if row is None:
            return portal.message(request, "link_invalid", status=410)
        return portal.page(request, "sign_in.html", address=row.address)

    def use_link(token: str) -> str | None:
        with transaction(app.sessions) as session:
            row = live_sign_in_link(session, token, lock=True)
            if row is None:
                return None
            row.used_at = utcnow()
            return create_session(session, row.address)

    async def sign_in(request: Request) -> Response:
        form = await portal.form(request)
        if isinstance(form, Response):
            return form
        session_token = await asyncio.to_thread(use_link, request.path_params["token"])
        if session_token is None:
            return portal.message(request, "link_invalid", status=410)
        response = RedirectResponse("/me", status_code=303)
        set_session_cookie(app, response, session_token)
        return response

    async def sign_out(request: Request) -> Response:
        form = await portal.form(request)
        if isinstance(form, Response):
            return form
        token = request.scope.get("session_token", "")
        if token:
            with transaction(app.sessions) as session:
                end_session(session, token)
        response = RedirectResponse("/", status_code=303)
        clear_session_cookie(app, response)
        return response

    def me(request: Request) -> Response:
        address = current_address(request)
        if address is None:
            return RedirectResponse("/login", status_code=303)
        with app.sessions() as session:
            rows = memberships(session, address)
            admin = portal.is_admin(address)
            managed = (
                entries(session, app.domain) if admin else managed_by(session, app.domain, address)
            )
        return portal.page(
            request, "me.html", address=address, rows=rows, managed=managed, modes=MEMBER_MODES
        )

    def change(address: str, names: list[str] | None, delivery: str | None) -> None:
        """Unsubscribe *address* from *names* (every list when None), or set its delivery."""
        with transaction(app.sessions) as session:
            targets = names if names is not None else [n for n, _ in memberships(session, address)]
            for name in targets:
                try:
                    mlist = get_list(session, name, app.domain)
                except UnknownList:
                    continue
                if delivery is None:
                    unsubscribe(app, session, mlist, address, {})
                else:
                    set_delivery(app, session, mlist, address, {"delivery": delivery})

    async def my_change(request: Request) -> Response:
        form = await portal.form(request)
        if isinstance(form, Response):
            return form
        address = current_address(request)
        if address is None:
            return RedirectResponse("/login", status_code=303)
        what = request.path_params.get("what", "unsubscribe-all")
        name = request.path_params.get("name")
        if what not in ("delivery", "unsubscribe", "unsubscribe-all"):
            return portal.not_found(request)
        delivery = form.get("delivery") if what == "delivery" else None
        if what == "delivery" and delivery not in MEMBER_MODES:
            return portal.message(request, "bad_request", status=400)
        await asyncio.to_thread(change, address, [name] if name else None, delivery)
        return RedirectResponse("/me", status_code=303)

    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/login/{token}", link_page, methods=["GET"]),
        Route("/login/{token}", sign_in, methods=["POST"]),
        Route("/logout", sign_out, methods=["POST"]),
        Route("/me", me, methods=["GET"]),
        Route("/me/unsubscribe-all", my_change, methods=["POST"]),
        Route("/me/lists/{name}/{what:str}", my_change, methods=["POST"]),
    ]
