"""Changing a roster directly, without the member's confirmation: what an owner does on the
portal's roster page, an API key and ``listserv members`` do. A new member is welcomed."""

from __future__ import annotations

from typing import Any

from listserv.app import App
from listserv.bounces.scores import member_state
from listserv.commands.subscriptions import welcome
from listserv.store.db import transaction
from listserv.store.lists import MailList
from listserv.store.members import add_member, change_member, find_member, remove_member
from listserv.store.models import Member


def member_data(member: Member) -> dict[str, Any]:
    """A member as ``members list --json`` and the API show it."""
    return {
        "address": member.address,
        "display_name": member.display_name,
        "delivery": member.delivery,
        "moderated": member.moderated,
        "bounce_score": member.bounce_score,
        "disabled_reason": member.disabled_reason,
        "subscribed_at": member.subscribed_at.isoformat(),
        "state": member_state(member),
        "last_bounce_at": member.last_bounce_at.isoformat() if member.last_bounce_at else None,
        "bounce_warnings": member.bounce_warnings,
    }


def add_to_roster(app: App, mlist: MailList, address: str, delivery: str) -> bool:
    """Subscribe *address* directly and welcome it; False when it already was a member."""
    with transaction(app.sessions) as session:
        member, new = add_member(session, mlist.id, address, delivery=delivery)
        if new:
            welcome(app, session, mlist, member)
        return new


def remove_from_roster(app: App, mlist: MailList, address: str) -> bool:
    with transaction(app.sessions) as session:
        return remove_member(session, mlist.id, address)


def set_roster_delivery(app: App, mlist: MailList, address: str, delivery: str) -> bool:
    with transaction(app.sessions) as session:
        member = find_member(session, mlist.id, address)
        if member is None:
            return False
        change_member(member, delivery=delivery)
        return True
