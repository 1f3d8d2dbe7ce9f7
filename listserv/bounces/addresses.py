"""Which ``NAME-bounces`` addresses are ours, checked at RCPT.

Only the forms we issue are accepted: the plain bounce address, a probe address whose probe is
outstanding, and a VERP address we signed. Anything else (``NAME-bounces+<anything>``) is
refused with 550, so nobody can have one message stored once per made-up address, nor name a
member in an address we never wrote.
"""

from __future__ import annotations

from sqlalchemy import select

from listserv.app import App
from listserv.auth.verp import verp_member, verp_secret
from listserv.mail.addresses import Target
from listserv.store.lists import get_list
from listserv.store.models import Member
from listserv.store.tokens import TOKEN_SHAPE, secret_digest

# A probe's bounce address is NAME-bounces+probe-TOKEN: only a probe we sent can bounce to it.
PROBE_PREFIX = "probe-"


def bounce_address_is_ours(app: App, target: Target) -> bool:
    detail = target.detail
    if not detail:
        return True
    if not detail.startswith(PROBE_PREFIX):
        return verp_member(verp_secret(app.config), target.list_name, detail) is not None
    token = detail[len(PROBE_PREFIX) :]
    if not TOKEN_SHAPE.match(token):
        return False
    with app.sessions() as session:
        mlist = get_list(session, target.list_name, app.domain)
        probe = select(Member.id).where(
            Member.list_id == mlist.id, Member.probe_digest == secret_digest(token)
        )
        return session.scalar(probe) is not None
