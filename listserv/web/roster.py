"""The roster of a list (``/lists/NAME/members/``), for its owners, moderators and
``[web] admins``: search, pages by address, bounce state, pending confirmations; adding,
removing and changing a member as ``listserv members`` does (a new member is welcomed).
Anyone else gets 404. The API calls the same functions.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from listserv.app import App
from listserv.commands.subscriptions import pending_confirmations, welcome
from listserv.mail.addresses import InvalidAddress, normalize
from listserv.store.db import transaction
from listserv.store.lists import MailList, UnknownList, get_list
from listserv.store.members import (
    DELIVERY_MODES,
    add_member,
    change_member,
    find_member,
    remove_member,
)
from listserv.store.portal import roster_page
from listserv.web.portal import Portal
from listserv.web.sessions import current_address

PAGE_SIZE = 50


def add_to_roster(app: App, mlist: MailList, address: str, delivery: str) -> bool:
    """Subscribe *address* directly and welcome it; False when it already was a member."""
    with transaction(app.sessions) as session:
        member, new = add_member(session, mlist.id, address, delivery=delivery)
        if new:
            welcome(app, session, mlist, member)
        return new


def remove_from_roster(app: App, mlist: MailList, address: str) -> bool:
    with transaction(app.sessions) as session:
        return remove_member(session, mlist.id, address)


def set_roster_delivery(app: App, mlist: MailList, address: str, delivery: str) -> bool:
    with transaction(app.sessions) as session:
        member = find_member(session, mlist.id, address)
        if member is None:
            return False
        change_member(member, delivery=delivery)
        return True


def roster_routes(portal: Portal) -> list[Route]:
    app = portal.app

    def managed_list(request: Request) -> MailList | None:
        try:
            with app.sessions() as session:
                mlist = get_list(session, request.path_params["name"], app.domain)
        except UnknownList:
            return None
        return mlist if portal.may_manage(mlist, current_address(request)) else None

    def roster(request: Request) -> Response:
        mlist = managed_list(request)
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
        form = await portal.form(request)
        if isinstance(form, Response):
            return form
        mlist = await asyncio.to_thread(managed_list, request)
        if mlist is None:
            return portal.not_found(request)
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
