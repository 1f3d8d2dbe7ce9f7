"""Signing in to the portal by mail: ``POST /login`` mails a single-use link that works for
15 minutes to an address that belongs to a list (member, moderator or owner); the answer is
the same for any address, so the form tells nobody who is subscribed.

The link's token lives in the tokens table like every token handed out by mail (only its
hash is stored), bound to one list the address belongs to; that list's address sends the
mail, in its language, through the outbound queue like every other notice.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from time import monotonic

from sqlalchemy import select
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.notices import allow_auto_reply, notice, send_notice
from listserv.store.lists import MailList, all_lists, list_by_id
from listserv.store.models import Member, Token, utcnow
from listserv.store.tokens import TOKEN_SHAPE, issue, secret_digest, use

SIGN_IN = "sign-in"
LINK_LIFETIME = timedelta(minutes=15)


def home_list(session: Session, app: App, address: str) -> MailList | None:
    """A list *address* belongs to, as member, moderator or owner; None for a stranger."""
    list_id = session.scalar(
        select(Member.list_id).where(Member.address == address).order_by(Member.list_id).limit(1)
    )
    if list_id is not None:
        return list_by_id(session, list_id, app.domain)
    for mlist in all_lists(session, app.domain):
        if address in (*mlist.config.moderators, *mlist.config.owners):
            return mlist
    return None


def request_sign_in(
    app: App, session: Session, address: str, link_for: Callable[[str], str]
) -> bool:
    """Mail a sign-in link to *address* if it belongs to a list and has not had its share of
    server mail today; whether one was sent (never shown to the visitor)."""
    mlist = home_list(session, app, address)
    if mlist is None or not allow_auto_reply(app, session, address):
        return False
    token = issue(session, mlist.id, SIGN_IN, address=address, ttl=LINK_LIFETIME)
    minutes = int(LINK_LIFETIME.total_seconds() // 60)
    message = notice(
        app, mlist, "login.txt", address, address=address, link=link_for(token), minutes=minutes
    )
    send_notice(app, session, mlist, message, [address])
    return True


def live_sign_in(session: Session, token: str, lock: bool = False) -> Token | None:
    """The unused, unexpired sign-in token, or None."""
    if not TOKEN_SHAPE.match(token):
        return None
    row = session.get(Token, secret_digest(token.lower()), with_for_update=lock)
    if row is None or row.action != SIGN_IN or row.used_at is not None:
        return None
    return row if row.expires_at > utcnow() else None


def redeem_sign_in(session: Session, token: str) -> Token | None:
    """Use the token up; the row says who signs in (and from which list)."""
    row = live_sign_in(session, token, lock=True)
    if row is not None:
        use(row)
    return row


@dataclass
class ClientLimit:
    """At most *allowed* sign-in requests per client address in *seconds* (per process: a
    guard against one client flooding the form, on top of the per-address daily cap)."""

    allowed: int = 10
    seconds: float = 3600.0
    seen: dict[str, deque[float]] = field(default_factory=dict)

    def allow(self, client: str) -> bool:
        now = monotonic()
        times = self.seen.setdefault(client, deque())
        while times and times[0] <= now - self.seconds:
            times.popleft()
        if len(times) >= self.allowed:
            return False
        times.append(now)
        if len(self.seen) > 10000:  # forget idle clients rather than grow without end
            self.seen = {client: times}
        return True
