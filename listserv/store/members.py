"""Membership: adding, removing and changing members, and streaming a list's recipients."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sqlalchemy import Select, insert, select
from sqlalchemy.orm import Session

from listserv.mail.addresses import normalize
from listserv.store.models import Member

DELIVERY_MODES = ("regular", "digest", "plain", "html", "nomail")
# Members in these modes get each post as it is distributed.
INDIVIDUAL = ("regular",)
STREAM_BATCH = 2000
# Addresses per IN (…) when looking up many at once (SQLite allows 32,766 parameters).
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


def recipients_query(list_id: int, modes: tuple[str, ...] = INDIVIDUAL) -> Select[tuple[str]]:
    """The addresses of the list's enabled members in *modes*, as a query: ``queue_mail``
    batches it inside the database, so fanning out to 100,000 members moves no address
    through Python."""
    return (
        select(Member.address)
        .where(
            Member.list_id == list_id,
            Member.delivery.in_(modes),
            Member.disabled_reason.is_(None),
        )
        .order_by(Member.id)
    )


def recipients(
    session: Session, list_id: int, modes: tuple[str, ...] = INDIVIDUAL
) -> Iterator[str]:
    """Addresses of the list's enabled members in *modes*, streamed in batches."""
    query = recipients_query(list_id, modes).execution_options(yield_per=STREAM_BATCH)
    yield from session.scalars(query)


def import_members(
    session: Session,
    list_id: int,
    entries: list[tuple[str, str]],
    delivery: str = "regular",
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Subscribe every (display name, normalised address) of *entries* not yet a member, in
    bulk; returns how many were added. An address given twice is added once. *progress* is
    told (addresses done, addresses in all) after each chunk."""
    if delivery not in DELIVERY_MODES:
        raise ValueError(f"unknown delivery mode {delivery!r}")
    wanted: dict[str, str] = {}
    for display_name, address in entries:
        wanted.setdefault(address, display_name)
    addresses = list(wanted)
    added = 0
    for start in range(0, len(addresses), LOOKUP_CHUNK):
        chunk = addresses[start : start + LOOKUP_CHUNK]
        query = select(Member.address).where(Member.list_id == list_id, Member.address.in_(chunk))
        existing = set(session.scalars(query))
        new = [
            {"list_id": list_id, "address": a, "display_name": wanted[a], "delivery": delivery}
            for a in chunk
            if a not in existing
        ]
        if new:
            session.execute(insert(Member), new)
        added += len(new)
        if progress is not None:
            progress(start + len(chunk), len(addresses))
    return added


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
