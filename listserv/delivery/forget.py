"""Mail that carries a live secret is kept only until it is sent.

A confirmation or moderation request carries a single-use token in its Reply-To; stored in
``outgoing`` for ``retention_days``, it would hand the token to anyone who can read the
database or a backup of it. Such mail is queued with kind ``TOKEN_KIND``, and its body is
dropped as soon as no delivery of it is waiting any more (sent, or failed for good; ``queue
retry`` leaves it alone then).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, bindparam, exists, func, update
from sqlalchemy.orm import Session

from listserv.store.models import Delivery, Outgoing

TOKEN_KIND = "token"


# Built once: it runs after every batch sent.
FORGET = (
    update(Outgoing)
    .where(
        Outgoing.id == bindparam("outgoing"),
        Outgoing.kind == TOKEN_KIND,
        ~exists().where(
            Delivery.outgoing_id == Outgoing.id, Delivery.status.in_(("queued", "sending"))
        ),
    )
    .values(raw=b"")
)


def forget_sent_secret(session: Session, outgoing_id: int) -> None:
    session.connection().execute(FORGET, {"outgoing": outgoing_id})


def still_has_body() -> ColumnElement[bool]:
    """A condition on ``Outgoing``: its body was not dropped."""
    return func.length(Outgoing.raw) > 0
