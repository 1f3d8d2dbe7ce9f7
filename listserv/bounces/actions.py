"""Acting on failures: a bounce reaching ``NAME-bounces`` (the envelope sender of list mail)
or, with VERP, ``NAME-bounces+local=domain@domain`` (which names the member whatever the
report looks like), and refusals at delivery time, are counted against the member.

Past ``bounce_threshold`` the member is sent a probe — a short message of our own from a
unique bounce address — and only a bouncing probe disables delivery (and sends the first
warning). Every failure is logged as a member event.
"""

from __future__ import annotations

import email
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.bounces.feedback import handle_complaint, is_feedback_report
from listserv.bounces.reports import Failure, Kind, classify, is_auto_reply, read_bounce, strongest
from listserv.bounces.scores import next_score
from listserv.delivery.outbound import send
from listserv.delivery.personalize import verp_decode
from listserv.mail.addresses import parse_recipient
from listserv.notices import notice, send_notice
from listserv.store.lists import MailList, settings_to_config
from listserv.store.members import find_member
from listserv.store.models import InboxMessage, MailingList, Member, MemberEvent, Outgoing, utcnow
from listserv.store.tokens import secret_digest

SCORING: tuple[Kind, ...] = ("hard", "soft")
PROBE_PREFIX = "probe-"


def send_probe(app: App, session: Session, mlist: MailList, member: Member) -> None:
    """A short message from a bounce address of its own: if it bounces, the address is dead
    (and not merely refusing someone's post)."""
    token = secrets.token_hex(16)  # lower-case: addresses are matched lower-cased
    member.probe_digest = secret_digest(token)
    member.probe_sent_at = utcnow()
    message = notice(app, mlist, "bounce_probe.txt", member.address, address=member.address)
    bounces = mlist.address("bounces", PROBE_PREFIX + token)
    send(app, session, mlist, "probe", message, [member.address], mail_from=bounces)


def disable(app: App, session: Session, mlist: MailList, member: Member) -> None:
    member.disabled_reason = "bounces"
    member.probe_digest = None
    member.probe_sent_at = None
    member.bounce_warnings = 0
    member.last_warning_at = utcnow()
    warn(app, session, mlist, member)


def warn(app: App, session: Session, mlist: MailList, member: Member) -> None:
    left = max(mlist.config.bounce_warnings - member.bounce_warnings, 0)
    message = notice(
        app,
        mlist,
        "bounce_disabled.txt",
        member.address,
        address=member.address,
        reminder=member.bounce_warnings > 0,
        warnings_left=left,
    )
    send_notice(app, session, mlist, message, [member.address])


def record_bounce(
    session: Session,
    mlist: MailList,
    address: str,
    failure: Failure,
    outcome: str,
    message_id: int | None,
) -> str:
    session.add(
        MemberEvent(
            list_id=mlist.id,
            address=address,
            kind=failure.kind,
            outcome=outcome,
            status=failure.status,
            diagnostic=failure.diagnostic,
            message_id=message_id,
        )
    )
    return f"{address}: {outcome}"


def register_failure(
    app: App, session: Session, mlist: MailList, failure: Failure, message_id: int | None
) -> str:
    """Count one failure against the member it names; returns what was done."""
    member = find_member(session, mlist.id, failure.address)
    if member is None:
        return f"{failure.address}: not a member"
    now = utcnow()
    score, counted = next_score(
        mlist.config, member.bounce_score, member.last_bounce_at, failure.kind, now
    )
    if member.disabled_reason:
        outcome = "already disabled"
    elif failure.kind not in SCORING:
        outcome = f"{failure.kind}: not counted"
    elif not counted:
        outcome = f"not counted: scored within {mlist.config.bounce_score_interval_days} days"
    else:
        member.bounce_score, member.last_bounce_at = score, now
        outcome = f"score {score:g}"
        if score >= mlist.config.bounce_threshold and not member.probe_digest:
            send_probe(app, session, mlist, member)
            outcome += ": probe sent"
    return record_bounce(session, mlist, member.address, failure, outcome, message_id)


def probe_failed(
    app: App,
    session: Session,
    mlist: MailList,
    member: Member | None,
    failure: Failure,
    message_id: int | None,
) -> str:
    if member is None or not member.probe_digest:
        return "probe bounce for no pending probe"
    disables = failure.kind in ("hard", "soft", "unrecognised")
    if disables:
        disable(app, session, mlist, member)
    outcome = "probe bounced: disabled" if disables else f"probe {failure.kind}: not counted"
    return record_bounce(session, mlist, member.address, failure, outcome, message_id)


def handle_bounce(app: App, session: Session, mlist: MailList, stored: InboxMessage) -> str:
    """The ``NAME-bounces[+detail]`` address: bounces, probe bounces and feedback reports."""
    message = email.message_from_bytes(stored.raw)
    target = parse_recipient(stored.rcpt_to, app.domain, {mlist.name})
    detail = target.detail if target else ""
    if is_feedback_report(message):
        return handle_complaint(app, session, mlist, stored, message, detail)
    failures = read_bounce(message)
    if detail.startswith(PROBE_PREFIX):
        member = session.scalar(
            select(Member).where(
                Member.list_id == mlist.id,
                Member.probe_digest == secret_digest(detail[len(PROBE_PREFIX) :]),
            )
        )
        failure = strongest(failures) or Failure("", "unrecognised")
        if is_auto_reply(message, failures):
            return "discarded: auto-reply to a probe"
        return "bounce: " + probe_failed(app, session, mlist, member, failure, stored.id)
    member_address = verp_decode(detail) if detail else None
    if member_address is not None:
        if is_auto_reply(message, failures):
            return "discarded: auto-reply"
        decisive = strongest(failures) or Failure(member_address, "unrecognised")
        failures = [Failure(member_address, decisive.kind, decisive.status, decisive.diagnostic)]
    if not failures:
        return "discarded: no bouncing address found"
    outcomes = [register_failure(app, session, mlist, f, stored.id) for f in failures]
    return "bounce: " + "; ".join(outcomes)


def delivery_failures(
    app: App, session: Session, outgoing_id: int, failures: dict[str, tuple[int, str]]
) -> None:
    """Refusals at delivery (5xx, or 4xx retried too long) count like bounces."""
    row = session.execute(
        select(Outgoing.kind, MailingList)
        .join(MailingList, MailingList.id == Outgoing.list_id)
        .where(Outgoing.id == outgoing_id)
    ).one_or_none()
    if row is None:
        return
    kind, list_row = row
    mlist = MailList(list_row.id, settings_to_config(list_row.settings), app.domain)
    for address, (code, reason) in failures.items():
        failure = Failure(address, classify(str(code), reason), str(code), reason[:2000])
        if kind == "probe":
            member = find_member(session, mlist.id, address)
            probe_failed(app, session, mlist, member, failure, None)
        else:
            register_failure(app, session, mlist, failure, None)
