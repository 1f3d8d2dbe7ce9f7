"""``GET /search``: full-text search over the archives the visitor may read, with the matching
words highlighted in an escaped excerpt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from listserv.app import App
from listserv.archive.reading import is_insider, may_read
from listserv.archive.render import hide_addresses, read_post, text_of
from listserv.archive.search import Filters, highlight, search
from listserv.store.lists import all_lists
from listserv.web.archive import sender_shown
from listserv.web.pages import Pages
from listserv.web.sessions import visitor_of


@dataclass(frozen=True)
class Hit:
    list_name: str
    message_id: str
    subject: str
    sender: str
    date: datetime
    excerpt: Markup


def day(value: str) -> datetime | None:
    try:
        return datetime.strptime(value.strip(), "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def search_routes(app: App, pages: Pages) -> list[Route]:
    def search_page(request: Request) -> Response:
        params = request.query_params
        query = params.get("q", "").strip()[:500]
        chosen = params.get("list", "")
        visitor = visitor_of(request)
        hits: list[Hit] = []
        with app.sessions() as session:
            readable = [m for m in all_lists(session, app.domain) if may_read(session, m, visitor)]
            if query:
                by_id = {m.id: m for m in readable if not chosen or m.name == chosen}
                insiders = {i for i, m in by_id.items() if is_insider(session, m, visitor)}
                after, before = day(params.get("after", "")), day(params.get("before", ""))
                filters = Filters(list(by_id), params.get("from", ""), after, before)
                for row in search(session, query, filters):
                    insider = row.list_id in insiders
                    content = text_of(read_post(row.raw)) if row.raw is not None else ""
                    excerpt = highlight(content if insider else hide_addresses(content), query)
                    hits.append(
                        Hit(
                            by_id[row.list_id].name,
                            row.message_id,
                            row.subject,
                            sender_shown(row, insider),
                            row.date,
                            excerpt,
                        )
                    )
        return pages.page(
            request,
            "search.html",
            query=query,
            lists=readable,
            chosen=chosen,
            sender=params.get("from", ""),
            after=params.get("after", ""),
            before=params.get("before", ""),
            hits=hits,
        )

    return [Route("/search", search_page)]
