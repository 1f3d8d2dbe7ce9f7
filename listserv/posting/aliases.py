"""Poster aliases: the From of a post rewritten for DMARC.

Mailman and Sympa put the poster in Reply-To, which breaks private replies and clashes with
``reply_to = list``. Here the rewritten From is ``"Ann via NAME" <NAME+p-ALIAS@domain>`` (the
words from ``templates/<lang>/munged_from.txt``), a
stable per-poster address at the list domain that forwards mail to that poster and nobody
else: "reply" reaches the author, "reply all" the list too. Aliases are unguessable (160
random bits), kept in the database and can be revoked (``listserv aliases revoke``), after
which the address is refused at RCPT.
"""

from __future__ import annotations

import base64
import secrets
from email.message import EmailMessage

from sqlalchemy import select
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.auth.authentication import authenticate_stored, stamp
from listserv.auth.dmarc import ENFORCING, Mitigation, Policy, display_name_of
from listserv.delivery.outbound import send
from listserv.mail.addresses import Target, format_address, parse_recipient, sender_of
from listserv.mail.codec import parse
from listserv.mail.templates import one_line
from listserv.store.lists import MailList, get_list
from listserv.store.models import InboxMessage, PosterAlias, utcnow

LOOP_HEADER = "X-Listserv-Alias"


def new_alias() -> str:
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").lower()


def alias_for(session: Session, list_id: int, address: str) -> str:
    """The live alias of *address* on the list, created on first use."""
    row = session.scalar(
        select(PosterAlias).where(
            PosterAlias.list_id == list_id,
            PosterAlias.address == address,
            PosterAlias.revoked_at.is_(None),
        )
    )
    if row is None:
        previous = session.scalar(
            select(PosterAlias).where(
                PosterAlias.list_id == list_id, PosterAlias.address == address
            )
        )
        # One row per poster and list: a revoked alias is replaced by a fresh one.
        row = previous or PosterAlias(list_id=list_id, address=address)
        row.alias, row.revoked_at, row.created_at = new_alias(), None, utcnow()
        session.add(row)
        session.flush()
    return row.alias


def live_alias(session: Session, list_id: int, alias: str) -> PosterAlias | None:
    return session.scalar(
        select(PosterAlias).where(
            PosterAlias.list_id == list_id,
            PosterAlias.alias == alias.lower(),
            PosterAlias.revoked_at.is_(None),
        )
    )


def choose_mitigation(
    app: App, session: Session, mlist: MailList, message: EmailMessage, policy: Policy | None
) -> Mitigation | None:
    """How this post must be rewritten, if at all: the list's ``dmarc`` action when the
    poster's domain enforces DMARC (or always, with ``dmarc_always``)."""
    action = mlist.config.dmarc
    if action == "none" or not (mlist.config.dmarc_always or policy in ENFORCING):
        return None
    poster = sender_of(message.get("From"))
    if poster is None:
        return None
    alias = mlist.address("alias", alias_for(session, mlist.id, poster))
    name = one_line(display_name_of(message)) or poster.partition("@")[0]
    shown = app.templates.text(
        mlist.config.language, "munged_from.txt", poster_name=name, list_name=mlist.name
    )
    return Mitigation(action, format_address(one_line(shown), alias))


def alias_is_live(app: App, target: Target) -> bool:
    """RCPT check: unknown and revoked aliases are refused."""
    with app.sessions() as session:
        mlist = get_list(session, target.list_name, app.domain)
        return live_alias(session, mlist.id, target.detail) is not None


def forward_to_poster(app: App, session: Session, mlist: MailList, stored: InboxMessage) -> str:
    """Mail to a poster's alias goes to that poster, with our authentication results."""
    target = parse_recipient(stored.rcpt_to, app.domain, {mlist.name})
    row = live_alias(session, mlist.id, target.detail) if target else None
    if row is None:
        return "discarded: unknown or revoked alias"
    message = parse(stored.raw)
    if message.get(LOOP_HEADER):
        return "discarded: alias mail came back (loop)"
    stamp(message, authenticate_stored(app.resolver, stored, message), app.domain)
    message[LOOP_HEADER] = mlist.address("alias", row.alias)
    send(app, session, mlist, "forward", message, [row.address], message_id=stored.id)
    return "forwarded to the poster of an alias"


def revoke(session: Session, list_id: int, alias: str) -> bool:
    row = live_alias(session, list_id, alias.removeprefix("p-"))
    if row is None:
        return False
    row.revoked_at = utcnow()
    return True


def list_aliases(session: Session, list_id: int) -> list[PosterAlias]:
    return list(
        session.scalars(
            select(PosterAlias).where(PosterAlias.list_id == list_id).order_by(PosterAlias.address)
        )
    )
