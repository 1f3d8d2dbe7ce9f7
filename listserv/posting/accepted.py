"""A list's accepted senders: addresses a moderator let post without moderation
("approve always") although they are not members, or the list moderates everyone."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from listserv.store.models import AcceptedSender

ACCEPTED = select(AcceptedSender.id).where(
    AcceptedSender.list_id == bindparam("list_id"), AcceptedSender.address == bindparam("address")
)


def is_accepted_sender(session: Session, list_id: int, address: str) -> bool:
    found = session.connection().scalar(ACCEPTED, {"list_id": list_id, "address": address})
    return found is not None


def accept_sender(session: Session, list_id: int, address: str, added_by: str) -> bool:
    """Add *address*; False when it was already there."""
    if is_accepted_sender(session, list_id, address):
        return False
    session.add(AcceptedSender(list_id=list_id, address=address, added_by=added_by))
    session.flush()
    return True
