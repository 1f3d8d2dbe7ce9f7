"""Bounces: finding dead addresses without punishing members for someone else's post.

A bounce reaches ``NAME-bounces`` (the envelope sender of list mail) or, with VERP,
``NAME-bounces+local=domain@domain``, which names the member whatever the report looks like.
Reports are read with flufl.bounce (every format it knows) and, for standard DSNs, their
per-recipient Status and Diagnostic-Code; a refusal at delivery time (5xx) counts the same.

Each failure is classified: *hard* (5.x.x, the address is dead), *soft* (4.x.x, given up on
after retrying), *policy* (5.7.x and the like: refused for what the message looked like —
spam filters, DMARC, blocklists; another member's post can cause it), or *delayed* (only a
warning). Hard and soft failures raise the member's score, at most once per
``bounce_score_interval_days``; the score starts again from zero after ``bounce_reset_days``
without a bounce. Past ``bounce_threshold`` the member is sent a probe — a short message of our
own from a unique bounce address — and only a bouncing probe disables delivery. A disabled
member gets ``bounce_warnings`` reminders, one per ``bounce_warning_interval_days``, then is
removed.
"""

from __future__ import annotations

import asyncio
import email
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import Message
from typing import Literal

from flufl.bounce import all_failures
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from listserv.app import App
from listserv.bounces.feedback import handle_complaint, is_feedback_report
from listserv.config import ListConfig
from listserv.delivery.outbound import queue_mail
from listserv.delivery.personalize import verp_decode
from listserv.mail.addresses import InvalidAddress, normalize, parse_recipient
from listserv.notices import notice, send_notice
from listserv.store.claims import lock_rows
from listserv.store.db import transaction
from listserv.store.lists import MailList, all_lists, settings_to_config
from listserv.store.members import find_member, remove_member
from listserv.store.models import InboxMessage, MailingList, Member, MemberEvent, Outgoing, utcnow
from listserv.store.tokens import secret_digest
from listserv.store.turns import take_turn

log = logging.getLogger(__name__)

Kind = Literal["hard", "soft", "policy", "delayed", "unrecognised"]
# RFC 3463 enhanced status codes, not parts of an IP address.
ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
# Words of a refusal for what the message looked like rather than for the address.
POLICY_WORDS = re.compile(
    r"spam|dmarc|\bspf\b|dkim|black\s?list|block\s?list|reputation|unsolicited|"
    r"rejected (?:by|due to|for) policy|policy (?:violation|reasons)",
    re.IGNORECASE,
)
MAILBOX_FULL = re.compile(r"quota|mailbox (?:is )?full|insufficient storage", re.IGNORECASE)
# Where a bounce's own text ends and the returned message begins.
RETURNED_MESSAGE = re.compile(
    r"^(?:-{2,}.*(?:copy|original|returned|undelivered|message).*|Return-[Pp]ath:.*|Received:.*)$",
    re.MULTILINE | re.IGNORECASE,
)
SCORING: tuple[Kind, ...] = ("hard", "soft")
PRIORITY: tuple[Kind, ...] = ("policy", "hard", "soft", "delayed", "unrecognised")
PROBE_PREFIX = "probe-"


@dataclass(frozen=True)
class Failure:
    """One recipient a bounce report or a delivery attempt says could not be reached."""

    address: str
    kind: Kind
    status: str = ""
    diagnostic: str = ""


# ---- reading reports (pure) -----------------------------------------------------------------


def classify(status: str, diagnostic: str = "") -> Kind:
    """hard, soft or policy, from a DSN Status and Diagnostic-Code or an SMTP reply code and
    text (``classify("550", "5.1.1 no such user")``)."""
    codes = ENHANCED.findall(f"{status} {diagnostic}")
    if any(subject == "7" for _, subject, _ in codes) or POLICY_WORDS.search(diagnostic):
        return "policy"
    # A full mailbox (X.2.2) belongs to a live member: temporary whatever the class says.
    if any((subject, detail) == ("2", "2") for _, subject, detail in codes) or (
        MAILBOX_FULL.search(f"{status} {diagnostic}")
    ):
        return "soft"
    klass = codes[0][0] if codes else status.strip()[:1]
    if klass == "5":
        return "hard"
    if klass == "4":
        return "soft"
    return "unrecognised"


def one_line(value: object) -> str:
    return " ".join(str(value or "").split())


def recipient_of(field: str) -> str | None:
    """``rfc822; user@example.org`` → the normalised address."""
    _, _, address = field.partition(";")
    try:
        return normalize(address.strip() or field.strip())
    except InvalidAddress:
        return None


def dsn_failures(message: Message) -> list[Failure]:
    """The failed and delayed recipients of a standard DSN (RFC 3464)."""
    found = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        for block in blocks if isinstance(blocks, list) else []:
            action = one_line(block.get("Action")).lower()
            field = block.get("Original-Recipient") or block.get("Final-Recipient")
            address = recipient_of(one_line(field)) if field else None
            if address is None or action not in ("failed", "delayed"):
                continue
            status = one_line(block.get("Status"))
            diagnostic = one_line(block.get("Diagnostic-Code"))
            kind: Kind = "delayed" if action == "delayed" else classify(status, diagnostic)
            found.append(Failure(address, kind, status[:32], diagnostic[:2000]))
    return found


def notification_text(message: Message) -> str:
    """The bounce's own words (its first text part, without the returned message)."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True) or b""
            try:
                text = payload.decode(part.get_content_charset() or "utf-8", "replace")
            except LookupError:  # a charset Python does not know
                text = payload.decode("latin-1")
            end = RETURNED_MESSAGE.search(text)
            return text[: end.start() if end else 4000][:4000]
    return ""


def _addresses(found: frozenset[bytes] | set[bytes]) -> list[str]:
    addresses = []
    for raw in found:
        try:
            addresses.append(normalize(raw.decode("utf-8", "replace")))
        except InvalidAddress:
            continue
    return sorted(addresses)


def read_bounce(message: Message) -> list[Failure]:
    """Every recipient a bounce reports, classified, in whatever format flufl.bounce knows."""
    found = {f.address: f for f in dsn_failures(message)}
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector tripping on odd mail must not lose the bounce
        log.exception("flufl.bounce failed on a bounce")
        temporary, permanent = set(), set()
    text = notification_text(message)
    for address in _addresses(permanent):
        if address not in found:
            found[address] = Failure(address, classify("5", text), "", one_line(text)[:2000])
    for address in _addresses(temporary):
        found.setdefault(address, Failure(address, "delayed", "", one_line(text)[:2000]))
    return list(found.values())


def strongest(failures: list[Failure]) -> Failure | None:
    """The failure that decides what a single-recipient (VERP) report means."""
    ordered = sorted(failures, key=lambda f: PRIORITY.index(f.kind))
    return ordered[0] if ordered else None


def is_auto_reply(message: Message, failures: list[Failure]) -> bool:
    """A vacation notice or the like sent to a bounce address: no failure in it, and marked
    as automatic (RFC 3834). Bounces carry that mark too, so the failures decide first."""
    return not failures and one_line(message.get("Auto-Submitted", "no")).lower() not in ("", "no")


# ---- scores (pure) --------------------------------------------------------------------------


def next_score(
    config: ListConfig, score: float, last_bounce: datetime | None, kind: Kind, now: datetime
) -> tuple[float, bool]:
    """(the new score, whether this failure counted) for one failure of *kind* at *now*."""
    weight = {"hard": config.bounce_hard_weight, "soft": config.bounce_soft_weight}.get(kind)
    if weight is None:
        return score, False
    if last_bounce is not None:
        since = now - last_bounce
        if since < timedelta(days=config.bounce_score_interval_days):
            return score, False
        if since >= timedelta(days=config.bounce_reset_days):
            score = 0.0
    return score + weight, True


def member_state(member: Member) -> str:
    if member.disabled_reason:
        return f"disabled: {member.disabled_reason}"
    return "probing" if member.probe_digest else "enabled"


# ---- acting on failures ---------------------------------------------------------------------


def send_probe(app: App, session: Session, mlist: MailList, member: Member) -> None:
    """A short message from a bounce address of its own: if it bounces, the address is dead
    (and not merely refusing someone's post)."""
    token = secrets.token_hex(16)  # lower-case: addresses are matched lower-cased
    member.probe_digest = secret_digest(token)
    member.probe_sent_at = utcnow()
    message = notice(app, mlist, "bounce_probe.txt", member.address, address=member.address)
    queue_mail(
        session,
        kind="probe",
        mail_from=mlist.address("bounces", PROBE_PREFIX + token),
        message=message,
        recipients=[member.address],
        batch_size=1,
        signer=app.signer,
        list_id=mlist.id,
    )


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


def record(
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


def register(
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
    return record(session, mlist, member.address, failure, outcome, message_id)


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
    return record(session, mlist, member.address, failure, outcome, message_id)


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
    return "bounce: " + "; ".join(register(app, session, mlist, f, stored.id) for f in failures)


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
            register(app, session, mlist, failure, None)


# ---- upkeep ---------------------------------------------------------------------------------


def upkeep(app: App) -> None:
    """Forget old scores and unanswered probes; remind disabled members, then remove them."""
    now = utcnow()
    with transaction(app.sessions) as session:
        for mlist in all_lists(session, app.domain):
            config = mlist.config
            in_list = Member.list_id == mlist.id
            session.execute(
                update(Member)
                .where(in_list, Member.probe_digest.is_not(None))
                .where(Member.probe_sent_at <= now - timedelta(days=config.bounce_probe_days))
                .values(probe_digest=None, probe_sent_at=None, bounce_score=0.0)
            )
            session.execute(
                update(Member)
                .where(in_list, Member.bounce_score > 0, Member.probe_digest.is_(None))
                .where(Member.disabled_reason.is_(None))
                .where(Member.last_bounce_at <= now - timedelta(days=config.bounce_reset_days))
                .values(bounce_score=0.0)
            )
            due = now - timedelta(days=config.bounce_warning_interval_days)
            query = select(Member).where(
                in_list, Member.disabled_reason == "bounces", Member.last_warning_at <= due
            )
            for member in session.scalars(lock_rows(query, session)).all():
                remind_or_remove(app, session, mlist, member)


def remind_or_remove(app: App, session: Session, mlist: MailList, member: Member) -> None:
    if member.bounce_warnings < mlist.config.bounce_warnings:
        member.bounce_warnings += 1
        member.last_warning_at = utcnow()
        warn(app, session, mlist, member)
        return
    address = member.address
    remove_member(session, mlist.id, address)
    message = notice(
        app,
        mlist,
        "bounce_removed.txt",
        address,
        address=address,
        join_address=mlist.address("join"),
    )
    send_notice(app, session, mlist, message, [address])
    session.add(
        MemberEvent(list_id=mlist.id, address=address, kind="removed", outcome="removed: bounces")
    )


def enable_delivery(member: Member) -> None:
    """Back to normal delivery with a clean slate (``members set --enable``)."""
    member.disabled_reason = None
    member.bounce_score = 0.0
    member.last_bounce_at = None
    member.probe_digest = None
    member.probe_sent_at = None
    member.bounce_warnings = 0
    member.last_warning_at = None


async def run_upkeep(app: App, interval: float) -> None:
    """Every *interval* seconds, in one ``serve`` process at a time (store/turns.py)."""
    while True:
        try:
            if await asyncio.to_thread(take_turn, app.sessions, "bounce_upkeep", interval):
                await asyncio.to_thread(upkeep, app)
        except Exception:
            log.exception("bounce upkeep failed")
        await asyncio.sleep(interval)
