"""The REST API, ``/api/v1/``: JSON with ``Authorization: Bearer KEY`` (``listserv api-key``).

Every answer that is not a success is an RFC 9457 problem (``application/problem+json``).
A list outside the key's scope is 404, as one that does not exist; a read-only key gets 403
for anything but GET. Listings come a page at a time: members, held posts and archived posts
by cursor (``cursor``, ``limit``; the answer's ``next`` is the following page's cursor), lists
by ``page`` and ``limit``. What the API does, it does through the functions the pages, the
mail and the command line use. The routes are described by ``/api/v1/openapi.json``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from listserv.archive.reading import may_read
from listserv.archive.render import hide_addresses, text_of
from listserv.archive.search import Filters, search
from listserv.commands.roster import (
    add_to_roster,
    member_data,
    remove_from_roster,
    set_roster_delivery,
)
from listserv.intake.inbox import queue_status
from listserv.mail.addresses import InvalidAddress, normalize
from listserv.mail.codec import parse
from listserv.moderation.decisions import Decider, held_summary
from listserv.store.api_keys import key_holder
from listserv.store.lists import MailList, UnknownList, get_list, member_count
from listserv.store.members import DELIVERY_MODES, find_member
from listserv.store.models import ApiKey, ArchivedMessage
from listserv.store.portal import archive_page, held_page, list_names_page, roster_page
from listserv.web.api_spec import openapi_document
from listserv.web.archive import sender_shown
from listserv.web.moderation import ACTIONS, decide
from listserv.web.portal import Portal

PREFIX = "/api/v1"
DEFAULT_LIMIT, MAX_LIMIT = 50, 1000
MAX_BODY = 64 * 1024


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str = "") -> None:
        super().__init__(title)
        self.status, self.title, self.detail = status, title, detail


def problem(status: int, title: str, detail: str = "", **headers: str) -> Response:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


@dataclass(frozen=True)
class Caller:
    name: str
    lists: tuple[str, ...]
    read_only: bool

    def may_use(self, name: str) -> bool:
        return not self.lists or name in self.lists


def limit_of(request: Request) -> int:
    try:
        limit = int(request.query_params.get("limit", DEFAULT_LIMIT))
    except ValueError:
        raise Problem(400, "Bad limit", "limit must be a whole number") from None
    return max(1, min(limit, MAX_LIMIT))


def int_param(request: Request, name: str, default: int) -> int:
    try:
        return int(request.query_params.get(name, default))
    except ValueError:
        raise Problem(400, f"Bad {name}", f"{name} must be a whole number") from None


def list_data(mlist: MailList, members: int) -> dict[str, Any]:
    c = mlist.config
    return {
        "name": mlist.name,
        "address": mlist.address(),
        "title": c.title,
        "description": c.description,
        "region": c.region,
        "topic": c.topic,
        "language": c.language,
        "posting": c.posting,
        "archive": c.archive,
        "advertised": c.advertised,
        "members": members,
    }


def post_data(row: ArchivedMessage, with_text: bool = False) -> dict[str, Any]:
    """An archived post as the API shows it: never the poster's full address."""
    data: dict[str, Any] = {
        "id": row.id,
        "message_id": row.message_id,
        "thread_id": row.thread_id,
        "subject": row.subject,
        "sender": sender_shown(row, insider=False),
        "date": row.date.isoformat(),
        "removed": row.raw is None,
    }
    if with_text:
        data["text"] = hide_addresses(text_of(parse(row.raw))) if row.raw is not None else ""
    return data


def api_routes(portal: Portal) -> list[Route]:
    app = portal.app
    Handler = Callable[[Request, Caller], Any]

    def caller_of(request: Request) -> Caller:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Problem(401, "Unauthorized", "send Authorization: Bearer KEY")
        with app.sessions() as session:
            row: ApiKey | None = key_holder(session, key.strip())
            if row is None:
                raise Problem(401, "Unauthorized", "unknown or revoked API key")
            return Caller(row.name, tuple(row.lists or ()), row.read_only)

    def scoped_list(caller: Caller, request: Request) -> MailList:
        name = request.path_params["name"]
        try:
            if not caller.may_use(name):
                raise UnknownList(name)
            with app.sessions() as session:
                return get_list(session, name, app.domain)
        except UnknownList:
            raise Problem(404, "Not Found", f"no list named {name!r}") from None

    def body_of(request: Request, raw: bytes) -> dict[str, Any]:
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise Problem(400, "Bad JSON", "the body is not JSON") from None
        if not isinstance(data, dict):
            raise Problem(400, "Bad JSON", "the body must be a JSON object")
        return data

    def endpoint(methods: dict[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
        """One route's methods: authentication, read-only keys, problems for errors."""

        async def run(request: Request) -> Response:
            handler = methods.get("GET" if request.method == "HEAD" else request.method)
            allowed = ", ".join(methods)
            if handler is None:
                return problem(405, "Method Not Allowed", f"use {allowed}", Allow=allowed)
            raw = await request.body()
            if len(raw) > MAX_BODY:
                return problem(413, "Content Too Large")
            try:
                caller = await asyncio.to_thread(caller_of, request)
                if caller.read_only and request.method not in ("GET", "HEAD"):
                    raise Problem(403, "Forbidden", "this API key is read-only")
                request.state.body = raw
                result = await asyncio.to_thread(handler, request, caller)
            except Problem as error:
                headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
                return problem(error.status, error.title, error.detail, **headers)
            if isinstance(result, Response):
                return result
            return JSONResponse(result, headers={"Cache-Control": "no-store"})

        return run

    def lists(request: Request, caller: Caller) -> dict[str, Any]:
        page, limit = max(1, int_param(request, "page", 1)), limit_of(request)
        with app.sessions() as session:
            allowed = list(caller.lists) if caller.lists else None
            names = list_names_page(session, allowed, (page - 1) * limit, limit + 1)
            items = []
            for name in names[:limit]:
                mlist = get_list(session, name, app.domain)
                items.append(list_data(mlist, member_count(session, mlist.id)))
        return {"items": items, "page": page, "limit": limit, "next": len(names) > limit}

    def one_list(request: Request, caller: Caller) -> dict[str, Any]:
        mlist = scoped_list(caller, request)
        with app.sessions() as session:
            return list_data(mlist, member_count(session, mlist.id))

    def members(request: Request, caller: Caller) -> dict[str, Any]:
        mlist, limit = scoped_list(caller, request), limit_of(request)
        cursor = request.query_params.get("cursor", "")
        search_for = request.query_params.get("q", "")
        with app.sessions() as session:
            rows = roster_page(session, mlist.id, search_for, cursor, limit + 1)
            items = [member_data(m) for m in rows[:limit]]
        following = items[-1]["address"] if len(rows) > limit else None
        return {"items": items, "next": following}

    def address_of(data: dict[str, Any] | str) -> str:
        value = data.get("address", "") if isinstance(data, dict) else data
        try:
            return normalize(str(value))
        except InvalidAddress as error:
            raise Problem(422, "Invalid address", str(error)) from None

    def delivery_of(data: dict[str, Any], default: str | None) -> str:
        delivery = data.get("delivery", default)
        if delivery not in DELIVERY_MODES:
            raise Problem(
                422, "Invalid delivery", f"delivery is one of {', '.join(DELIVERY_MODES)}"
            )
        return str(delivery)

    def add(request: Request, caller: Caller) -> Response:
        mlist = scoped_list(caller, request)
        data = body_of(request, request.state.body)
        address, delivery = address_of(data), delivery_of(data, "regular")
        if not add_to_roster(app, mlist, address, delivery):
            raise Problem(409, "Conflict", f"{address} is a member already")
        with app.sessions() as session:
            member = find_member(session, mlist.id, address)
            assert member is not None
            return JSONResponse(member_data(member), status_code=201)

    def one_member(request: Request, caller: Caller) -> dict[str, Any]:
        mlist = scoped_list(caller, request)
        address = address_of(request.path_params["address"])
        with app.sessions() as session:
            member = find_member(session, mlist.id, address)
            if member is None:
                raise Problem(404, "Not Found", f"{address} is not a member")
            return member_data(member)

    def change(request: Request, caller: Caller) -> dict[str, Any]:
        mlist = scoped_list(caller, request)
        address = address_of(request.path_params["address"])
        delivery = delivery_of(body_of(request, request.state.body), None)
        if not set_roster_delivery(app, mlist, address, delivery):
            raise Problem(404, "Not Found", f"{address} is not a member")
        return one_member(request, caller)

    def remove(request: Request, caller: Caller) -> Response:
        mlist = scoped_list(caller, request)
        address = address_of(request.path_params["address"])
        if not remove_from_roster(app, mlist, address):
            raise Problem(404, "Not Found", f"{address} is not a member")
        return Response(status_code=204)

    def held(request: Request, caller: Caller) -> dict[str, Any]:
        mlist, limit = scoped_list(caller, request), limit_of(request)
        with app.sessions() as session:
            rows = held_page(session, mlist.id, int_param(request, "cursor", 0), limit + 1)
            items = [held_summary(row, mlist) for row in rows[:limit]]
        return {"items": items, "next": items[-1]["id"] if len(rows) > limit else None}

    def decide_held(request: Request, caller: Caller) -> dict[str, Any]:
        mlist = scoped_list(caller, request)
        data = body_of(request, request.state.body)
        action = data.get("action")
        if action not in ACTIONS:
            raise Problem(422, "Invalid action", f"action is one of {', '.join(ACTIONS)}")
        reason = str(data.get("reason", ""))[:2000]
        decider = Decider(f"API key {caller.name}", "api")
        outcome = decide(app, mlist, request.path_params["id"], action, reason, decider)
        if not outcome.found:
            raise Problem(404, "Not Found", "no such held post on this list")
        if not outcome.decided:
            raise Problem(409, "Conflict", outcome.text)
        return {"result": outcome.text}

    def readable(request: Request, caller: Caller) -> MailList:
        mlist = scoped_list(caller, request)
        with app.sessions() as session:
            if mlist.config.archive == "none" or not (
                may_read(session, mlist, None) or caller.lists
            ):
                raise Problem(404, "Not Found", "no archive to read")
        return mlist

    def archive(request: Request, caller: Caller) -> dict[str, Any]:
        mlist, limit = readable(request, caller), limit_of(request)
        cursor = request.query_params.get("cursor")
        before = int_param(request, "cursor", 0) if cursor else None
        with app.sessions() as session:
            rows = archive_page(session, mlist.id, before, limit + 1)
            items = [post_data(row) for row in rows[:limit]]
        return {"items": items, "next": items[-1]["id"] if len(rows) > limit else None}

    def archived(request: Request, caller: Caller) -> dict[str, Any]:
        mlist = readable(request, caller)
        with app.sessions() as session:
            row = session.get(ArchivedMessage, request.path_params["id"])
            if row is None or row.list_id != mlist.id:
                raise Problem(404, "Not Found", "no such archived post")
            return post_data(row, with_text=True)

    def search_archives(request: Request, caller: Caller) -> dict[str, Any]:
        query = request.query_params.get("q", "").strip()[:500]
        chosen = request.query_params.get("list", "")
        limit = limit_of(request)
        with app.sessions() as session:
            names = list_names_page(session, list(caller.lists) or None, 0, 100_000)
            ids = []
            for name in names:
                mlist = get_list(session, name, app.domain)
                visible = may_read(session, mlist, None) or bool(caller.lists)
                if (not chosen or name == chosen) and visible and mlist.config.archive != "none":
                    ids.append(mlist.id)
            rows = search(session, query, Filters(ids), limit=limit)
            return {"items": [post_data(row) for row in rows]}

    def queue(_request: Request, _caller: Caller) -> dict[str, Any]:
        return queue_status(app)

    async def spec(_request: Request) -> Response:
        return JSONResponse(openapi_document(portal.base_url(_request) + PREFIX))

    async def unknown(_request: Request) -> Response:
        return problem(404, "Not Found", "no such API route")

    table: list[tuple[str, dict[str, Handler]]] = [
        ("/lists", {"GET": lists}),
        ("/lists/{name}", {"GET": one_list}),
        ("/lists/{name}/members", {"GET": members, "POST": add}),
        ("/lists/{name}/members/{address}", {"GET": one_member, "PATCH": change, "DELETE": remove}),
        ("/lists/{name}/held", {"GET": held}),
        ("/lists/{name}/held/{id:int}", {"POST": decide_held}),
        ("/lists/{name}/archive", {"GET": archive}),
        ("/lists/{name}/archive/{id:int}", {"GET": archived}),
        ("/search", {"GET": search_archives}),
        ("/queue", {"GET": queue}),
    ]
    every = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return [
        Route(f"{PREFIX}/openapi.json", spec, methods=["GET"]),
        *(Route(PREFIX + path, endpoint(methods), methods=every) for path, methods in table),
        Route(PREFIX + "/{rest:path}", unknown, methods=every),
    ]
