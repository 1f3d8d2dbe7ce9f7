"""The roster of a list (``/lists/NAME/members/``), for its owners, moderators and
``[web] admins``: search, pages by address, bounce state, pending confirmations; adding,
removing and changing a member through ``commands.roster``, as the API does (a new member is
welcomed). Anyone else gets 404.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from listserv.commands.roster import add_to_roster, remove_from_roster, set_roster_delivery
from listserv.commands.subscriptions import pending_confirmations
from listserv.mail.addresses import InvalidAddress, normalize
from listserv.store.members import DELIVERY_MODES
from listserv.store.portal import roster_page
from listserv.web.portal import Portal

PAGE_SIZE = 50


def roster_routes(portal: Portal) -> list[Route]:
    app = portal.app

    def roster(request: Request) -> Response:
        mlist = portal.managed_list(request)
        if mlist is None:
            return portal.not_found(request)
        search = request.query_params.get("q", "").strip()[:320]
        after = request.query_params.get("after", "")[:320]
        with app.sessions() as session:
            rows = roster_page(session, mlist.id, search, after, PAGE_SIZE + 1)
            pending = pending_confirmations(session, mlist.id)
            session.expunge_all()
        return portal.page(
            request,
            "roster.html",
            mlist=mlist,
            members=rows[:PAGE_SIZE],
            next_after=rows[PAGE_SIZE - 1].address if len(rows) > PAGE_SIZE else "",
            search=search,
            pending=pending,
            modes=DELIVERY_MODES,
        )

    async def change(request: Request) -> Response:
        checked = await portal.managed_form(request)
        if isinstance(checked, Response):
            return checked
        form, mlist = checked
        what = request.path_params["what"]
        delivery = form.get("delivery") or "regular"
        try:
            address = normalize(form.get("address", ""))
        except InvalidAddress:
            return portal.message(request, "invalid_address", status=400)
        if delivery not in DELIVERY_MODES:
            return portal.message(request, "bad_request", status=400)
        if what == "add":
            await asyncio.to_thread(add_to_roster, app, mlist, address, delivery)
        elif what == "remove":
            await asyncio.to_thread(remove_from_roster, app, mlist, address)
        elif what == "delivery":
            await asyncio.to_thread(set_roster_delivery, app, mlist, address, delivery)
        else:
            return portal.not_found(request)
        return RedirectResponse(f"/lists/{mlist.name}/members/", status_code=303)

    return [
        Route("/lists/{name}/members/", roster, methods=["GET"]),
        Route("/lists/{name}/members/{what:str}", change, methods=["POST"]),
    ]
