"""``/confirm/TOKEN``: the web side of a confirmation mail. ``GET`` shows what the token would
do and a button; ``POST`` does it, through the one table of token actions
(``commands.confirm``), as a reply to the mail would. Holding the token is the proof: it was
mailed to the address it names. Only subscription changes are confirmed here; a moderator
decides on the held-post pages.
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from listserv.commands.confirm import confirm_token
from listserv.commands.subscriptions import CHANGES
from listserv.store.db import transaction
from listserv.store.lists import MailList, list_by_id
from listserv.store.models import Token
from listserv.store.portal import list_of_token
from listserv.store.tokens import lookup
from listserv.web.portal import Portal


def confirm_routes(portal: Portal) -> list[Route]:
    app = portal.app

    def pending(session, token: str) -> tuple[MailList, Token] | None:
        list_id = list_of_token(session, token)
        row = lookup(session, list_id, token) if list_id is not None else None
        if row is None or row.action not in CHANGES:
            return None
        return list_by_id(session, row.list_id, app.domain), row

    def show(request: Request) -> Response:
        with app.sessions() as session:
            found = pending(session, request.path_params["token"])
            if found is None:
                return portal.message(request, "link_invalid", status=410)
            mlist, row = found
            action, address = row.action, row.address
            delivery = (row.payload or {}).get("delivery", "")
        return portal.page(
            request, "confirm.html", mlist=mlist, action=action, address=address, delivery=delivery
        )

    def carry_out(token: str) -> str | None:
        with transaction(app.sessions) as session:
            found = pending(session, token)
            if found is None:
                return None
            mlist, row = found
            return confirm_token(app, session, mlist, token, EmailMessage(), row.address)

    async def confirm(request: Request) -> Response:
        form = await portal.form(request)
        if isinstance(form, Response):
            return form
        outcome = await asyncio.to_thread(carry_out, request.path_params["token"])
        if outcome is None:
            return portal.message(request, "link_invalid", status=410)
        return portal.page(request, "confirmed.html", outcome=outcome)

    return [
        Route("/confirm/{token}", show, methods=["GET"]),
        Route("/confirm/{token}", confirm, methods=["POST"]),
    ]
