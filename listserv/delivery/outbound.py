"""The one way out: every mail the server sends is stored here and split into batches.

``queue_mail`` stores one outgoing message and its recipients as batches of at most
``max_recipients`` addresses; delivery workers claim the batches. With a signer (``[dkim]``)
the message is DKIM-signed here, after every change, and mail relayed for others (posts,
forwards) is ARC-sealed too, so what is stored is exactly what leaves. It is called inside the
transaction that decided to send, so a message is queued exactly when that decision commits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from email.message import Message
from functools import lru_cache
from typing import Protocol

from sqlalchemy import Insert, Integer, Select, bindparam, func, insert, literal, select
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.auth.dkim import Signer
from listserv.mail.codec import to_bytes
from listserv.store.lists import MailList
from listserv.store.models import Delivery, Outgoing, UTCDateTime, utcnow


class Settable(Protocol):
    """An ``asyncio.Event``, or what stands for one (the pokes of worker processes)."""

    def set(self) -> None: ...


class Wakeup:
    """Tells this process's delivery workers that new work was committed."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.event: Settable | None = None

    def bind(self, loop: asyncio.AbstractEventLoop, event: Settable) -> None:
        self.loop, self.event = loop, event

    def __call__(self) -> None:
        # A loop that has stopped has nobody left to wake (a server stopped in this process).
        if self.loop is not None and self.event is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.event.set)


wake_delivery = Wakeup()
# Kinds of mail written by others that we pass on: their authentication results travel with
# them in an ARC set.
RELAYED = ("post", "forward")
INSERT_OUTGOING = insert(Outgoing)


def queue_mail(
    session: Session,
    *,
    kind: str,
    mail_from: str,
    message: Message | bytes,
    recipients: Iterable[str] | Select[tuple[str]],
    batch_size: int,
    signer: Signer | None,
    list_id: int | None = None,
    message_id: int | None = None,
    personalized: bool = False,
    footer_marker: str = "",
) -> int:
    """Store *message* once (signed) and its *recipients* in batches; returns the outgoing
    row's id. *recipients* may be a query selecting addresses of the list *list_id* (its
    parameter ``list_id``): it is then batched by the database."""
    raw = message if isinstance(message, bytes) else to_bytes(message)
    if signer is not None:
        raw = signer.sign(raw)
        if kind in RELAYED:
            raw = signer.seal(raw)
    now = utcnow()
    values = {
        "kind": kind,
        "mail_from": mail_from,
        "raw": raw,
        "list_id": list_id,
        "message_id": message_id,
        "personalized": personalized,
        "footer_marker": footer_marker,
        "created_at": now,
    }
    # On the connection: no ORM bookkeeping for a row nothing reads back in this transaction.
    outgoing_id: int = session.connection().execute(INSERT_OUTGOING, values).inserted_primary_key[0]
    if isinstance(recipients, Select):
        session.connection().execute(
            _batches_from_query(recipients),
            {"list_id": list_id, "outgoing_id": outgoing_id, "batch_size": batch_size, "now": now},
        )
        session.info["wake_delivery"] = True
        return outgoing_id
    rows: list[dict] = []
    batch: list[str] = []
    for address in recipients:
        batch.append(address)
        if len(batch) == batch_size:
            rows.append(_batch_row(outgoing_id, batch, now))
            batch = []
        if len(rows) == ROWS_PER_INSERT:  # memory stays the same however many recipients
            session.execute(insert(Delivery), rows)
            rows = []
    if batch:
        rows.append(_batch_row(outgoing_id, batch, now))
    if rows:
        session.execute(insert(Delivery), rows)
    session.info["wake_delivery"] = True
    return outgoing_id


def send(
    app: App,
    session: Session,
    mlist: MailList | None,
    kind: str,
    message: Message | bytes,
    recipients: Iterable[str] | Select[tuple[str]],
    *,
    message_id: int | None = None,
    mail_from: str = "",
    personalized: bool = False,
    footer_marker: str = "",
) -> int:
    """Queue mail of *mlist*: from its bounce address (or *mail_from*; the null sender for
    the site's own addresses, which have no list), in batches of the configured size, signed
    when ``[dkim]`` is set unless *personalized* (its copies are signed one by one at
    delivery, each with its own link where *footer_marker* stands)."""
    if not mail_from and mlist is not None:
        mail_from = mlist.address("bounces")
    return queue_mail(
        session,
        kind=kind,
        mail_from=mail_from,
        message=message,
        recipients=recipients,
        batch_size=app.config.delivery.max_recipients,
        signer=None if personalized else app.signer,
        list_id=mlist.id if mlist is not None else None,
        message_id=message_id,
        personalized=personalized,
        footer_marker=footer_marker,
    )


ROWS_PER_INSERT = 100


def _batch_row(outgoing_id: int, batch: list[str], now: object) -> dict:
    return {
        "outgoing_id": outgoing_id,
        "recipients": "\n".join(batch),
        "count": len(batch),
        "status": "queued",
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": now,
        "last_error": "",
    }


@lru_cache(maxsize=16)
def _batches_from_query(recipients: Select[tuple[str]]) -> Insert:
    """``INSERT … SELECT`` of one delivery row per ``batch_size`` addresses of *recipients*,
    joined with newlines like ``_batch_row``; built once per query, its values parameters.
    Which addresses share a batch does not matter, so rows are numbered in whatever order
    the database finds them."""
    batch = (func.row_number().over() - 1) // bindparam("batch_size", type_=Integer)
    numbered = recipients.order_by(None).add_columns(batch.label("batch")).subquery()
    address = numbered.c[0]
    now = bindparam("now", type_=UTCDateTime)
    batches = (
        select(
            bindparam("outgoing_id", type_=Integer),
            func.aggregate_strings(address, "\n"),
            func.count(),
            literal("queued"),
            literal(0),
            now,
            now,
            literal(""),
        )
        .group_by(numbered.c.batch)
        .order_by(numbered.c.batch)
    )
    columns = ["outgoing_id", "recipients", "count", "status", "attempts", "created_at"]
    return insert(Delivery).from_select([*columns, "next_attempt_at", "last_error"], batches)


def wake_after_commit(session: Session) -> None:
    """Session ``after_commit`` hook: wake delivery when the commit queued mail."""
    if session.info.pop("wake_delivery", False):
        wake_delivery()
