"""Membership: adding, removing and changing members, and streaming a list's recipients."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from functools import cache

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from listserv.mail.addresses import normalize
from listserv.store.models import Member

DELIVERY_MODES = ("regular", "digest", "plain", "html", "nomail")
# Members in these modes get each post as it is distributed.
INDIVIDUAL = ("regular",)
STREAM_BATCH = 2000
# Addresses per IN (…) or INSERT when handling many at once (SQLite allows 32,766
# parameters).
LOOKUP_CHUNK = 5000


def find_member(session: Session, list_id: int, address: str) -> Member | None:
    return session.scalar(
        select(Member).where(Member.list_id == list_id, Member.address == normalize(address))
    )


def add_member(
    session: Session,
    list_id: int,
    address: str,
    *,
    display_name: str = "",
    delivery: str = "regular",
) -> tuple[Member, bool]:
    """Subscribe *address*; returns the member and whether it is new."""
    if delivery not in DELIVERY_MODES:
        raise ValueError(f"unknown delivery mode {delivery!r}")
    existing = find_member(session, list_id, address)
    if existing is not None:
        return existing, False
    member = Member(
        list_id=list_id,
        address=normalize(address),
        display_name=display_name,
        delivery=delivery,
    )
    session.add(member)
    session.flush()
    return member, True


def remove_member(session: Session, list_id: int, address: str) -> bool:
    member = find_member(session, list_id, address)
    if member is None:
        return False
    session.delete(member)
    session.flush()
    return True


@cache
def recipients_query(modes: tuple[str, ...] = INDIVIDUAL) -> Select[tuple[str]]:
    """The addresses of the enabled members in *modes* of the list given as the parameter
    ``list_id``, as a query: ``queue_mail`` batches it inside the database, so fanning out
    to 100,000 members moves no address through Python. Built once per *modes*: a statement
    built per post costs more than running it."""
    return (
        select(Member.address)
        .where(
            Member.list_id == bindparam("list_id"),
            Member.delivery.in_(modes),
            Member.disabled_reason.is_(None),
        )
        .order_by(Member.id)
    )


def recipients(
    session: Session, list_id: int, modes: tuple[str, ...] = INDIVIDUAL
) -> Iterator[str]:
    """Addresses of the list's enabled members in *modes*, streamed in batches."""
    query = recipients_query(modes).execution_options(yield_per=STREAM_BATCH)
    yield from session.scalars(query, {"list_id": list_id})


def import_members(
    session: Session,
    list_id: int,
    entries: Iterable[tuple[str, str]],
    delivery: str = "regular",
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Subscribe every (display name, normalised address) of *entries* not yet a member, in
    chunks, so memory stays the same for a million addresses as for ten (the database, not
    a set in memory, skips known addresses); returns how many entries there were and how
    many members were added. An address given twice is added once, with its first name.
    *progress* is told how many entries were read after each chunk."""
    if delivery not in DELIVERY_MODES:
        raise ValueError(f"unknown delivery mode {delivery!r}")
    count = select(func.count()).where(Member.list_id == list_id)
    before = session.scalar(count) or 0
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    given = 0
    stream = iter(entries)
    while chunk := list(itertools.islice(stream, LOOKUP_CHUNK)):
        given += len(chunk)
        rows = [
            {"list_id": list_id, "address": address, "display_name": name, "delivery": delivery}
            for name, address in chunk
        ]
        session.execute(
            dialect.insert(Member).on_conflict_do_nothing(index_elements=["list_id", "address"]),
            rows,
        )
        if progress is not None:
            progress(given)
    return given, (session.scalar(count) or 0) - before


def members_of(session: Session, list_id: int) -> list[Member]:
    """The list's members, by address."""
    query = select(Member).where(Member.list_id == list_id).order_by(Member.address)
    return list(session.scalars(query))


def change_member(
    member: Member, *, delivery: str | None = None, moderated: bool | None = None
) -> None:
    """Set what is given; None leaves a setting as it is."""
    if delivery is not None:
        if delivery not in DELIVERY_MODES:
            raise ValueError(f"unknown delivery mode {delivery!r}")
        member.delivery = delivery
    if moderated is not None:
        member.moderated = moderated
