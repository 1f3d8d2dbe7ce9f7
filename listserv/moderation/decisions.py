"""Deciding a held post: approve, reject, discard (moderators, by reply or command line),
withdraw (the poster, by reply) and expire (the schedule).

A post is decided once. Its row is locked while it is decided, so two moderators answering
at the same moment cannot both decide it; the second is told it was already decided. Every
decision records who made it, when and how; the other moderators are told, so nobody works
on a post that is settled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.mail.text import plain_text
from listserv.moderation.verdicts import read_verdict
from listserv.notices import allow_auto_reply, is_automated, notice, send_notice
from listserv.posting.accepted import accept_sender
from listserv.posting.hold import MODERATE, expires_at, may_tell_poster, moderators_of, original_of
from listserv.posting.pipeline import distribute
from listserv.store.db import take_write_lock
from listserv.store.lists import MailList
from listserv.store.members import find_member
from listserv.store.models import HeldMessage, InboxMessage, Token, utcnow
from listserv.store.tokens import use

REQUEST_SENT_TO = re.compile(r"^(?P<who>\S+) \(request sent to (?P<moderator>[^()]+)\)$")
COMMAND_LINE = " (command line)"
# What each verdict makes of a held post.
STATUS = {
    "approve": "approved",
    "reject": "rejected",
    "discard": "discarded",
    "withdraw": "withdrawn",
    "expire": "expired",
}


@dataclass(frozen=True)
class Decider:
    """Who decided and how: ``via`` is mail, cli or expiry; ``moderator`` the moderator
    whose request carried the token, when by mail."""

    who: str
    via: str
    moderator: str = ""

    def describe(self) -> str:
        if self.moderator and self.moderator != self.who:
            return f"{self.who} (request sent to {self.moderator})"
        return self.who

    @classmethod
    def recorded(cls, held: HeldMessage) -> Decider:
        """Who decided *held*, read back from what ``describe`` recorded, so that notices
        can word it in the list's language ("root (command line)" → the operator root)."""
        found = REQUEST_SENT_TO.match(held.decided_by or "")
        if found:
            return cls(found["who"], held.decided_via, found["moderator"])
        who = held.decided_by or ""
        if held.decided_via == "cli":
            who = who.removesuffix(COMMAND_LINE)
        return cls(who, held.decided_via)


class NotPending(Exception):
    def __init__(self, held: HeldMessage) -> None:
        super().__init__(
            f"held message {held.id} was already {held.status}"
            + (f" by {held.decided_by}" if held.decided_by else "")
        )
        self.held = held


def locked_held(session: Session, held_id: object) -> HeldMessage | None:
    if not isinstance(held_id, int):
        return None
    take_write_lock(session)
    return session.get(HeldMessage, held_id, with_for_update=True, populate_existing=True)


def settle(
    app: App,
    session: Session,
    mlist: MailList,
    held: HeldMessage,
    action: str,
    decider: Decider,
    *,
    reason: str = "",
    always: bool = False,
    now: datetime | None = None,
) -> str:
    """Carry out *action* (approve, reject, discard, withdraw, expire) on a pending post."""
    if held.status != "pending":
        raise NotPending(held)
    message, envelope_sender = original_of(session, held)
    if action == "approve":
        distribute(app, session, mlist, message, held.message_id)
        if always:
            let_post_freely(session, mlist, held.sender, decider.describe())
    elif action == "reject" and not is_automated(message, envelope_sender):
        # A person's answer: sent whatever the daily cap of automatic replies.
        tell_poster(app, session, mlist, held, "held_rejected.txt", reason)
    elif action == "expire" and may_tell_poster(app, session, held, message, envelope_sender):
        tell_poster(app, session, mlist, held, "held_expired.txt")
    held.status = STATUS[action]
    held.decided_at = now or utcnow()
    held.decided_by = decider.describe()[:400]
    held.decided_via = decider.via
    held.decision_reason = reason
    if decider.via != "expiry":
        tell_moderators(app, session, mlist, held, skip={decider.moderator, decider.who})
    if decider.via == "mail":
        # Whoever decided by reply hears that it was done (the poster, for a withdrawal).
        acknowledge(app, session, mlist, held, decider.who)
    return f"held message {held.id} {held.status}"


def let_post_freely(session: Session, mlist: MailList, sender: str, by: str) -> None:
    """``approve always``: a moderated member is no longer moderated; a non-member (or
    anyone, on a list that moderates everyone) becomes an accepted sender."""
    member = find_member(session, mlist.id, sender)
    if member is not None:
        member.moderated = False
    if member is None or mlist.config.posting in ("moderated", "announce"):
        accept_sender(session, mlist.id, sender, by)


def tell_poster(
    app: App, session: Session, mlist: MailList, held: HeldMessage, template: str, reason: str = ""
) -> None:
    reply = notice(app, mlist, template, held.sender, held=held, reason=reason)
    send_notice(app, session, mlist, reply, [held.sender])


def tell_moderators(
    app: App, session: Session, mlist: MailList, held: HeldMessage, skip: set[str]
) -> None:
    for moderator in moderators_of(mlist):
        if moderator not in skip:
            update = notice(
                app, mlist, "held_decided.txt", moderator, held=held, decider=Decider.recorded(held)
            )
            send_notice(app, session, mlist, update, [moderator])


def acknowledge(app: App, session: Session, mlist: MailList, held: HeldMessage, to: str) -> None:
    reply = notice(app, mlist, "held_acknowledged.txt", to, held=held)
    send_notice(app, session, mlist, reply, [to])


def tell_already_decided(
    app: App, session: Session, mlist: MailList, held: HeldMessage, to: str, by_moderator: bool
) -> None:
    reply = notice(
        app,
        mlist,
        "held_already_decided.txt",
        to,
        held=held,
        by_moderator=by_moderator,
        decider=Decider.recorded(held),
    )
    send_notice(app, session, mlist, reply, [to])


def answer_spent_token(
    app: App, session: Session, mlist: MailList, row: Token, message: EmailMessage, sender: str
) -> str:
    """A reply carrying a moderation or withdrawal token already used: say who decided the
    post, when and how (a person wrote it, so they are answered, within the daily cap)."""
    held = locked_held(session, row.payload.get("held"))
    if held is None or held.list_id != mlist.id or held.status == "pending":
        return "discarded: used token"
    if allow_auto_reply(app, session, sender):
        tell_already_decided(app, session, mlist, held, sender, row.action == MODERATE)
    return f"already {held.status}: held message {held.id}"


def decide_by_mail(
    app: App,
    session: Session,
    mlist: MailList,
    row: Token,
    message: EmailMessage,
    sender: str,
    allowed: tuple[str, ...],
) -> str:
    """A reply carrying a moderation or withdrawal token."""
    held = locked_held(session, row.payload.get("held"))
    if held is None or held.list_id != mlist.id:
        use(row)
        return "discarded: the held message is gone"
    if held.status != "pending":
        use(row)
        tell_already_decided(app, session, mlist, held, sender, row.action == MODERATE)
        return f"already {held.status}: held message {held.id}"
    by_moderator = row.action == MODERATE
    verdict = read_verdict(plain_text(message))
    if verdict is None or verdict.action not in allowed:
        # The token stays valid: the writer may still answer properly.
        if allow_auto_reply(app, session, sender):
            reply = notice(
                app, mlist, "held_unclear.txt", sender, held=held, by_moderator=by_moderator
            )
            send_notice(app, session, mlist, reply)
        return f"ignored: no decision in the reply for held message {held.id}"
    use(row)
    decider = Decider(sender, "mail", row.address if by_moderator else "")
    return settle(
        app,
        session,
        mlist,
        held,
        verdict.action,
        decider,
        reason=verdict.reason,
        always=verdict.always,
    )


def moderate_by_mail(
    app: App, session: Session, mlist: MailList, row: Token, message: EmailMessage, sender: str
) -> str:
    return decide_by_mail(
        app, session, mlist, row, message, sender, ("approve", "reject", "discard")
    )


def withdraw_by_mail(
    app: App, session: Session, mlist: MailList, row: Token, message: EmailMessage, sender: str
) -> str:
    return decide_by_mail(app, session, mlist, row, message, sender, ("withdraw",))


def held_posts(
    session: Session, list_id: int | None = None, include_decided: bool = False
) -> list[HeldMessage]:
    query = select(HeldMessage).order_by(HeldMessage.id)
    if list_id is not None:
        query = query.where(HeldMessage.list_id == list_id)
    if not include_decided:
        query = query.where(HeldMessage.status == "pending")
    return list(session.scalars(query))


def received_text(session: Session, post: HeldMessage) -> str:
    """The held post as it was received (empty once housekeeping has deleted it)."""
    stored = session.get(InboxMessage, post.message_id)
    return stored.raw.decode("utf-8", "replace") if stored else ""


def held_summary(post: HeldMessage, mlist: MailList) -> dict[str, Any]:
    """A held post and its decision as the command line, the portal and the API show it."""
    return {
        "id": post.id,
        "list": mlist.name,
        "sender": post.sender,
        "subject": post.subject,
        "rule": post.rule,
        "reason": post.reason,
        "held_at": post.held_at.isoformat(),
        "expires_at": expires_at(mlist, post).isoformat(),
        "status": post.status,
        "decided_at": post.decided_at.isoformat() if post.decided_at else None,
        "decided_by": post.decided_by or None,
        "decided_via": post.decided_via or None,
        "decision_reason": post.decision_reason or None,
    }
