"""Reading bounce reports (pure): which recipients a report says failed, and how.

Reports are read with flufl.bounce (every format it knows) and, for standard DSNs, their
per-recipient Status and Diagnostic-Code; a refusal at delivery time (5xx) is classified the
same way. Each failure is *hard* (5.x.x, the address is dead), *soft* (4.x.x, given up on
after retrying), *policy* (5.7.x and the like: refused for what the message looked like —
spam filters, DMARC, blocklists; another member's post can cause it), or *delayed* (only a
warning).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email.message import Message
from typing import Literal

from flufl.bounce import all_failures

from listserv.mail.addresses import InvalidAddress, normalize
from listserv.mail.headers import one_line

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
PRIORITY: tuple[Kind, ...] = ("policy", "hard", "soft", "delayed", "unrecognised")


@dataclass(frozen=True)
class Failure:
    """One recipient a bounce report or a delivery attempt says could not be reached."""

    address: str
    kind: Kind
    status: str = ""
    diagnostic: str = ""


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


def field_text(message: Message, name: str) -> str:
    """A header or DSN field on one line, "" when absent."""
    return one_line(str(message.get(name) or ""))


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
            action = field_text(block, "Action").lower()
            field = field_text(block, "Original-Recipient") or field_text(block, "Final-Recipient")
            address = recipient_of(field) if field else None
            if address is None or action not in ("failed", "delayed"):
                continue
            status = field_text(block, "Status")
            diagnostic = field_text(block, "Diagnostic-Code")
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


def decoded_addresses(found: frozenset[bytes] | set[bytes]) -> list[str]:
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
    for address in decoded_addresses(permanent):
        if address not in found:
            found[address] = Failure(address, classify("5", text), "", one_line(text)[:2000])
    for address in decoded_addresses(temporary):
        found.setdefault(address, Failure(address, "delayed", "", one_line(text)[:2000]))
    return list(found.values())


def strongest(failures: list[Failure]) -> Failure | None:
    """The failure that decides what a single-recipient (VERP) report means."""
    ordered = sorted(failures, key=lambda f: PRIORITY.index(f.kind))
    return ordered[0] if ordered else None


def is_auto_reply(message: Message, failures: list[Failure]) -> bool:
    """A vacation notice or the like sent to a bounce address: no failure in it, and marked
    as automatic (RFC 3834). Bounces carry that mark too, so the failures decide first."""
    return not failures and field_text(message, "Auto-Submitted").lower() not in ("", "no")
