"""``GET /``: the directory of advertised lists, grouped by region and topic, each with its
address and, when the visitor may read it, its archive."""

from __future__ import annotations

from itertools import groupby

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from listserv.app import App
from listserv.archive.reading import may_read
from listserv.store.lists import MailList, all_lists
from listserv.web.pages import Pages
from listserv.web.sessions import visitor_of


def place_of(mlist: MailList) -> tuple[str, str]:
    return mlist.config.region, mlist.config.topic


def directory_routes(app: App, pages: Pages) -> list[Route]:
    def directory(request: Request) -> Response:
        visitor = visitor_of(request)
        with app.sessions() as session:
            advertised = [m for m in all_lists(session, app.domain) if m.config.advertised]
            readable = {m.name for m in advertised if may_read(session, m, visitor)}
        groups = [
            (place, list(lists))
            for place, lists in groupby(sorted(advertised, key=place_of), place_of)
        ]
        return pages.page(request, "directory.html", groups=groups, readable=readable)

    return [Route("/", directory)]
