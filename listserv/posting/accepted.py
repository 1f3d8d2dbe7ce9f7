"""A list's accepted senders: addresses a moderator let post without moderation
("approve always") although they are not members, or the list moderates everyone."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from listserv.mail.addresses import normalize
from listserv.store.models import AcceptedSender, Member

ACCEPTED = select(AcceptedSender.id).where(
    AcceptedSender.list_id == bindparam("list_id"), AcceptedSender.address == bindparam("address")
)
# The rule chain asks both of every post: one statement, built once.
STANDING = select(
    select(Member.moderated)
    .where(Member.list_id == bindparam("list_id"), Member.address == bindparam("member"))
    .scalar_subquery(),
    ACCEPTED.exists(),
)


def standing(session: Session, list_id: int, sender: str) -> tuple[bool | None, bool]:
    """Whether *sender* is a moderated member of the list (None: no member, as is a sender
    without a domain), and whether it is an accepted sender."""
    session.flush()  # a member added or changed earlier in this transaction counts
    member = normalize(sender) if "@" in sender else None
    moderated, accepted = (
        session.connection()
        .execute(STANDING, {"list_id": list_id, "member": member, "address": sender})
        .one()
    )
    return (None if moderated is None else bool(moderated)), bool(accepted)


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
