"""The DKIM, SPF and DMARC checks of a post, done before the router's transaction opens and
kept with the message: DNS lookups take seconds when a nameserver is slow, and no
transaction (nor a lock: a held post being approved, SQLite's write lock) may wait on them.
A held post is approved later with the results of when it was received.
"""

from __future__ import annotations

from sqlalchemy import update

from listserv.app import App
from listserv.auth.authentication import authenticate, to_json
from listserv.mail.addresses import parse_recipient
from listserv.mail.codec import parse
from listserv.store.db import transaction
from listserv.store.lists import list_names
from listserv.store.models import InboxMessage


def authenticate_ahead(app: App, message_id: int) -> None:
    """Check a new post to a list and keep the results with it (other mail needs none)."""
    with app.sessions() as session:
        stored = session.get(InboxMessage, message_id)
        if stored is None or stored.status != "new" or stored.authentication is not None:
            return
        target = parse_recipient(stored.rcpt_to, app.domain, list_names(session))
        if target is None or target.role != "post":
            return
        raw, mail_from, peer_ip, helo = stored.raw, stored.mail_from, stored.peer_ip, stored.helo
    # The session is closed: nothing is held open while the lookups wait.
    result = authenticate(app.resolver, raw, parse(raw), mail_from, peer_ip, helo)
    with transaction(app.sessions) as session:
        session.execute(
            update(InboxMessage)
            .where(InboxMessage.id == message_id, InboxMessage.authentication.is_(None))
            .values(authentication=to_json(result))
        )
