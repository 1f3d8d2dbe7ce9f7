"""The DKIM, SPF and DMARC checks of a post, done before the router's transaction opens and
kept with the message: DNS lookups take seconds when a nameserver is slow, and no
transaction (nor a lock: a held post being approved, SQLite's write lock) may wait on them.
A held post is approved later with the results of when it was received.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from listserv.app import App
from listserv.auth.authentication import authenticate, to_json
from listserv.mail.addresses import parse_recipient
from listserv.mail.codec import parse_headers
from listserv.store.db import transaction
from listserv.store.lists import list_names
from listserv.store.models import InboxMessage

# Checks made side by side once one waited on a slow nameserver: then a group's lookups wait
# together, not in turn. With answers at hand they are made in turn, as a dozen threads
# taking the interpreter's lock from one another starve intake's event loop.
CHECKERS = ThreadPoolExecutor(16, thread_name_prefix="checks")
SLOW_CHECK = 0.05


@dataclass(frozen=True)
class Unchecked:
    """What the checks of one received post read, taken out of the database."""

    message_id: int
    raw: bytes
    mail_from: str
    peer_ip: str | None
    helo: str | None


def unchecked_posts(app: App, message_ids: list[int]) -> list[Unchecked]:
    """The new posts to lists among *message_ids* whose checks are still to be made (other
    mail needs none), read in one short session that is closed before any lookup."""
    with app.sessions() as session:
        names = list_names(session)
        rows = session.scalars(
            select(InboxMessage)
            .where(
                InboxMessage.id.in_(message_ids),
                InboxMessage.status == "new",
                InboxMessage.authentication.is_(None),
            )
            .options(joinedload(InboxMessage.body))
        )
        return [
            Unchecked(row.id, row.raw, row.mail_from, row.peer_ip, row.helo)
            for row in rows
            if (target := parse_recipient(row.rcpt_to, app.domain, names)) is not None
            and target.role == "post"
        ]


def check(app: App, post: Unchecked) -> dict[str, Any]:
    result = authenticate(
        app.resolver, post.raw, parse_headers(post.raw), post.mail_from, post.peer_ip, post.helo
    )
    return to_json(result)


def check_ahead(app: App, message_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The checks of the posts among *message_ids* that have none yet, by message id, for
    the router to keep with them in its transaction."""
    results: dict[int, dict[str, Any]] = {}
    posts = unchecked_posts(app, message_ids)
    while posts:
        started = time.monotonic()
        post = posts.pop(0)
        results[post.message_id] = check(app, post)
        if time.monotonic() - started > SLOW_CHECK:
            slow = CHECKERS.map(lambda post: check(app, post), posts)
            results.update(zip((post.message_id for post in posts), slow, strict=True))
            break
    return results


def authenticate_ahead(app: App, message_id: int) -> None:
    """Check one new post and keep the results with it at once."""
    for found_id, result in check_ahead(app, [message_id]).items():
        with transaction(app.sessions) as session:
            session.execute(
                update(InboxMessage)
                .where(InboxMessage.id == found_id, InboxMessage.authentication.is_(None))
                .values(authentication=result)
            )
