"""Held posts on the web: ``GET /lists/NAME/held/`` (what waits, and why), ``GET …/held/ID``
(one post, sanitised) and ``POST …/held/ID`` with ``action`` = approve | approve-always |
reject (+ ``reason``) | discard.

A decision here is the decision by mail or command line: ``moderation.decisions.settle``,
recorded as made by the signed-in address "via web" (the API passes "api"). Anyone who may
not moderate the list gets 404, as for a list that does not exist.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from listserv.app import App
from listserv.archive.render import render_readable, split_parts
from listserv.mail.codec import parse
from listserv.moderation.decisions import (
    Decider,
    NotPending,
    held_posts,
    locked_held,
    received_text,
    settle,
)
from listserv.store.db import transaction
from listserv.store.lists import MailList
from listserv.store.models import HeldMessage
from listserv.web.pages import choose_language
from listserv.web.portal import Portal
from listserv.web.sessions import current_address

ACTIONS = ("approve", "approve-always", "reject", "discard")


@dataclass(frozen=True)
class Outcome:
    """What became of a decision: ``found`` False when there is no such pending post's list
    or post, ``decided`` False when it was already decided."""

    found: bool
    decided: bool
    text: str = ""


def decide(
    app: App, mlist: MailList, held_id: int, action: str, reason: str, decider: Decider
) -> Outcome:
    """Settle held post *held_id* of *mlist* as the web or the API asks."""
    with transaction(app.sessions) as session:
        held = locked_held(session, held_id)
        if held is None or held.list_id != mlist.id:
            return Outcome(False, False)
        verb = "approve" if action == "approve-always" else action
        try:
            text = settle(
                app,
                session,
                mlist,
                held,
                verb,
                decider,
                reason=reason if verb == "reject" else "",
                always=action == "approve-always",
            )
        except NotPending as error:
            return Outcome(True, False, str(error))
        return Outcome(True, True, text)


def post_parts(raw_text: str) -> tuple[list[Markup], list[str]]:
    """A held post as a moderator reads it: readable parts sanitised, attachment names."""
    if not raw_text:
        return [], []
    readable, attachments = split_parts(parse(raw_text.encode("utf-8", "replace")))
    return render_readable(readable, show_addresses=True), [a.filename for a in attachments]


def moderation_routes(portal: Portal) -> list[Route]:
    app = portal.app

    def held_list(request: Request) -> Response:
        mlist = portal.managed_list(request)
        if mlist is None:
            return portal.not_found(request)
        with app.sessions() as session:
            posts = held_posts(session, mlist.id)
        language = choose_language(request)
        reasons = {post.id: app.templates.held_reason(language, post, mlist) for post in posts}
        return portal.page(request, "held_list.html", mlist=mlist, posts=posts, reasons=reasons)

    def held_post(request: Request) -> Response:
        mlist = portal.managed_list(request)
        if mlist is None:
            return portal.not_found(request)
        with app.sessions() as session:
            post = session.get(HeldMessage, request.path_params["id"])
            if post is None or post.list_id != mlist.id:
                return portal.not_found(request)
            parts, attachments = post_parts(received_text(session, post))
            session.expunge(post)
        return portal.page(
            request,
            "held_post.html",
            mlist=mlist,
            post=post,
            reason=app.templates.held_reason(choose_language(request), post, mlist),
            parts=parts,
            attachments=attachments,
            actions=ACTIONS,
        )

    async def decide_post(request: Request) -> Response:
        checked = await portal.managed_form(request)
        if isinstance(checked, Response):
            return checked
        form, mlist = checked
        address = current_address(request) or ""  # a manager is always signed in
        action = form.get("action", "")
        if action not in ACTIONS:
            return portal.message(request, "bad_request", status=400)
        # Named as the moderator too, so the others are told and the decider is not.
        decider = Decider(address, "web", address)
        reason = form.get("reason", "").strip()[:2000]
        held_id = request.path_params["id"]
        outcome = await asyncio.to_thread(decide, app, mlist, held_id, action, reason, decider)
        if not outcome.found:
            return portal.not_found(request)
        if not outcome.decided:
            return portal.message(request, "already_decided", status=409)
        return RedirectResponse(f"/lists/{mlist.name}/held/", status_code=303)

    return [
        Route("/lists/{name}/held/", held_list, methods=["GET"]),
        Route("/lists/{name}/held/{id:int}", held_post, methods=["GET"]),
        Route("/lists/{name}/held/{id:int}", decide_post, methods=["POST"]),
    ]
