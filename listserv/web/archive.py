"""Archive pages (SPEC "The portal and archives"): months, a month's threads or posts, a
thread, a post with its raw form and attachments, a month as mbox, the Atom feed.

Every route answers 404, the same as for an unknown list, when the visitor may not read the
archive; posters' full addresses are shown only to the list's members (archive/reading.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

from markupsafe import Markup
from sqlalchemy import Row
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from listserv.app import App
from listserv.archive.mbox import mbox_of
from listserv.archive.reading import (
    is_insider,
    latest_posts,
    listed_between,
    may_read,
    month_bounds,
    month_counts,
    month_size,
    posts_between,
    thread_posts,
    threads_between,
)
from listserv.archive.render import (
    Attachment,
    hide_addresses_in_bytes,
    read_post,
    render_readable,
    split_parts,
)
from listserv.archive.store import find_post
from listserv.store.lists import MailList, UnknownList, get_list
from listserv.store.models import ArchivedMessage, utcnow
from listserv.web.pages import Pages, public_base
from listserv.web.sessions import visitor_of

T = TypeVar("T")
ATTACHMENT = re.compile(r"^(?P<id>.+)/attachment/(?P<number>\d+)/[^/]*$")
FEED_SIZE = 20
PAGE_SIZE = 100  # threads, or posts by date, on a page of a month
PAGE = re.compile(r"[1-9][0-9]{0,5}")


@dataclass
class PostView:
    """A post as a page shows it."""

    id: int
    message_id: str
    thread_id: int
    subject: str
    sender: str
    date: datetime
    removed: bool
    reason: str
    parts: list[Markup] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)


def sender_shown(row: ArchivedMessage | Row[Any], insider: bool) -> str:
    if insider and row.sender_address:
        return (
            f"{row.sender_name} <{row.sender_address}>" if row.sender_name else row.sender_address
        )
    if row.sender_name and row.sender_obfuscated:
        return f"{row.sender_name} ({row.sender_obfuscated})"
    return row.sender_name or row.sender_obfuscated


def post_view(row: ArchivedMessage | Row[Any], insider: bool, with_body: bool = True) -> PostView:
    """A post as pages show it; *with_body* (a whole row) renders its text and attachments,
    without it a month's listing row does."""
    view = PostView(
        id=row.id,
        message_id=row.message_id,
        thread_id=row.thread_id,
        subject=row.subject,
        sender=sender_shown(row, insider),
        date=row.date,
        removed=row.removed_at is not None,
        reason=row.removed_reason,
    )
    if with_body and row.raw is not None:
        readable, view.attachments = split_parts(read_post(row.raw))
        view.parts = render_readable(readable, show_addresses=insider)
    return view


def page_number(request: Request) -> int | None:
    """``?page=N`` (1 when absent); None for anything but a page number."""
    asked = request.query_params.get("page", "1")
    return int(asked) if PAGE.fullmatch(asked) else None


def archive_routes(app: App, pages: Pages) -> list[Route]:
    def read_archive(
        request: Request, query: Callable[[Session, MailList], T]
    ) -> tuple[MailList, bool, T] | None:
        """The list, whether the visitor sees addresses, and what *query* reads of its
        archive; None when the visitor may not read it (answer 404, as for no list)."""
        with app.sessions() as session:
            try:
                mlist = get_list(session, request.path_params["name"], app.domain)
            except UnknownList:
                return None
            visitor = visitor_of(request)
            if not may_read(session, mlist, visitor):
                return None
            return mlist, is_insider(session, mlist, visitor), query(session, mlist)

    def months(request: Request) -> Response:
        found = read_archive(request, lambda session, mlist: month_counts(session, mlist.id))
        if found is None:
            return pages.not_found(request)
        mlist, _, counts = found
        return pages.page(request, "archive.html", mlist=mlist, months=counts)

    def month_posts(
        request: Request, read: Callable[[Session, int, datetime, datetime], list[Any]]
    ) -> tuple[MailList, bool, list[Any]] | None:
        bounds = month_bounds(request.path_params["month"])
        if bounds is None:
            return None
        return read_archive(request, lambda session, mlist: read(session, mlist.id, *bounds))

    def month(request: Request) -> Response:
        """A page of the month's threads (or posts, ``?view=date``), PAGE_SIZE to a page:
        a busy list's month is a thousand posts, too many to read and render at each visit.
        Past the last page is 404; the first page always answers, even for no posts."""
        bounds = month_bounds(request.path_params["month"])
        number = page_number(request)
        if bounds is None or number is None:
            return pages.not_found(request)
        by_date = request.query_params.get("view") == "date"
        offset = (number - 1) * PAGE_SIZE

        def listing(session: Session, mlist: MailList) -> tuple[int, int, list[Any]] | None:
            posts, threads = month_size(session, mlist.id, *bounds)
            if number > 1 and offset >= (posts if by_date else threads):
                return None
            read = listed_between if by_date else threads_between
            return posts, threads, read(session, mlist.id, *bounds, offset, PAGE_SIZE)

        found = read_archive(request, listing)
        if found is None or found[2] is None:
            return pages.not_found(request)
        mlist, insider, (posts, threads, rows) = found
        if by_date:
            listed = [post_view(r, insider, with_body=False) for r in rows]
        else:
            listed = [replace(t, first=post_view(t.first, insider, with_body=False)) for t in rows]
        return pages.page(
            request,
            "month.html",
            mlist=mlist,
            month=request.path_params["month"],
            by_date=by_date,
            listed=listed,
            post_count=posts,
            page=number,
            pages=max(1, -(-(posts if by_date else threads) // PAGE_SIZE)),
        )

    def month_mbox(request: Request) -> Response:
        found = month_posts(request, posts_between)
        if found is None:
            return pages.not_found(request)
        mlist, insider, rows = found
        name = f"{mlist.name}-{request.path_params['month']}.mbox"
        return StreamingResponse(
            mbox_of(rows, hide=not insider),
            media_type="application/mbox",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    def thread(request: Request) -> Response:
        number = request.path_params["thread"]
        found = read_archive(
            request, lambda session, mlist: thread_posts(session, mlist.id, number)
        )
        if found is None or not found[2]:
            return pages.not_found(request)
        mlist, insider, posts = found
        views = [(depth, post_view(row, insider)) for depth, row in posts]
        return pages.page(request, "thread.html", mlist=mlist, posts=views)

    def message(request: Request) -> Response:
        """``MSGID/``, ``MSGID/raw`` and ``MSGID/attachment/N/FILENAME`` (a Message-ID may
        hold a "/", so the path is read here rather than by the router)."""
        rest = request.path_params["rest"]
        attachment = ATTACHMENT.match(rest)
        if attachment:
            message_id, number, kind = attachment["id"], int(attachment["number"]), "attachment"
        elif rest.endswith("/raw"):
            message_id, number, kind = rest[: -len("/raw")], 0, "raw"
        else:
            message_id, number, kind = rest.rstrip("/"), 0, "page"

        def post_and_parent(
            session: Session, mlist: MailList
        ) -> tuple[ArchivedMessage | None, ArchivedMessage | None]:
            row = find_post(session, mlist.id, message_id)
            parent = session.get(ArchivedMessage, row.parent_id) if row and row.parent_id else None
            return row, parent

        found = read_archive(request, post_and_parent)
        if found is None or found[2][0] is None:
            return pages.not_found(request)
        mlist, insider, (row, parent) = found
        if kind == "page":
            return pages.page(
                request,
                "message.html",
                mlist=mlist,
                post=post_view(row, insider),
                parent=post_view(parent, insider, with_body=False) if parent else None,
            )
        if row.raw is None:
            return pages.not_found(request)
        if kind == "raw":
            raw = row.raw if insider else hide_addresses_in_bytes(row.raw)
            return Response(raw, media_type="text/plain; charset=utf-8")
        return attachment_response(row, number) or pages.not_found(request)

    def feed(request: Request) -> Response:
        found = read_archive(
            request, lambda session, mlist: latest_posts(session, mlist.id, FEED_SIZE)
        )
        if found is None:
            return pages.not_found(request)
        mlist, insider, rows = found
        views = [post_view(row, insider) for row in rows]
        xml = pages.render(
            "en",
            "feed.atom",
            mlist=mlist,
            posts=views,
            base=public_base(app, request),
            updated=views[0].date if views else utcnow(),
        )
        return Response(xml, media_type="application/atom+xml; charset=utf-8")

    return [
        Route("/lists/{name}/archive/", months),
        Route("/lists/{name}/archive/{month}.mbox", month_mbox),
        Route("/lists/{name}/archive/{month}/", month),
        Route("/lists/{name}/thread/{thread:int}/", thread),
        Route("/lists/{name}/message/{rest:path}", message),
        Route("/lists/{name}/feed.atom", feed),
    ]


def attachment_response(row: ArchivedMessage, number: int) -> Response | None:
    """An attachment, always as a download: a browser must never render or sniff it."""
    assert row.raw is not None
    _, attachments = split_parts(read_post(row.raw))
    if not 1 <= number <= len(attachments):
        return None
    chosen = attachments[number - 1]
    disposition = f"attachment; filename*=UTF-8''{quote(chosen.filename, safe='')}"
    return Response(
        chosen.data,
        media_type=chosen.content_type,
        headers={
            "Content-Disposition": disposition,
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
