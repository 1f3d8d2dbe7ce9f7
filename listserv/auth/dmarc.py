"""DMARC: reading a domain's published policy, and rewriting a post so that receivers who
enforce the poster's policy still deliver it.

A list changes the posts it relays (subject prefix, footer), so the poster's DKIM signature
breaks and the list's server is not in the poster's SPF record: a post From a domain with
``p=reject`` or ``p=quarantine`` would be refused or spam-foldered. ``munge`` puts a From at the
list domain (a per-poster alias that forwards private replies to the poster); ``wrap`` sends the
untouched original as an attachment of a message from the list. The rewrites are pure
functions of (message, mitigation).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from functools import cache
from typing import Literal

from publicsuffixlist import PublicSuffixList

from listserv.auth.resolver import DnsFailure, Resolver
from listserv.mail.codec import MAIL_POLICY
from listserv.mail.headers import set_header

log = logging.getLogger(__name__)

Policy = Literal["none", "quarantine", "reject"]
ENFORCING = ("quarantine", "reject")
TAG = re.compile(r"^\s*([a-z]+)\s*=\s*(.*?)\s*$", re.I)
# Headers of the original that the wrapping message repeats, so that it threads and reads the
# same in a mail client.
WRAP_KEEPS = ("Subject", "Date", "Message-ID", "To", "Cc", "In-Reply-To", "References")


@cache
def suffix_list() -> PublicSuffixList:
    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """``mail.example.co.uk`` → ``example.co.uk``: the public suffix and one label more (RFC
    7489 3.2). A name under a top-level domain the list does not know counts as under a
    public suffix of one label (the list's ``*`` rule), so ``mail.reject-dmarc.example`` is
    ``reject-dmarc.example``; a public suffix itself is its own organizational domain."""
    name = domain.lower().rstrip(".")
    return suffix_list().privatesuffix(name) or name


def parse_record(text: str) -> dict[str, str] | None:
    """The tags of a DMARC record, or None when *text* is not one (``v=DMARC1`` first)."""
    first = TAG.match(text.split(";", 1)[0])
    if first is None or first.group(1).lower() != "v" or first.group(2) != "DMARC1":
        return None
    tags: dict[str, str] = {}
    for match in filter(None, map(TAG.match, text.split(";"))):
        tags.setdefault(match.group(1).lower(), match.group(2))
    return tags


def find_record(resolver: Resolver, domain: str) -> dict[str, str] | None:
    records = [r for r in map(parse_record, resolver.txt(f"_dmarc.{domain}")) if r is not None]
    # RFC 7489 6.6.3: several records mean none.
    return records[0] if len(records) == 1 else None


def lookup_policy(resolver: Resolver, domain: str) -> Policy | None:
    """The policy *domain* publishes (its organizational domain's ``sp=``, else ``p=``, when
    it publishes none itself); None when it publishes none. A failed lookup counts as none:
    it must never stop a post.
    """
    domain = domain.lower().rstrip(".")
    try:
        record = find_record(resolver, domain)
        tag = "p"
        if record is None:
            org = organizational_domain(domain)
            if org != domain:
                record = find_record(resolver, org)
                tag = "sp" if record is not None and "sp" in record else "p"
    except DnsFailure as error:
        log.warning("DMARC policy of %s unknown, treated as none: %s", domain, error)
        return None
    if record is None:
        return None
    value = record.get(tag, "none").lower()
    return value if value in ENFORCING else "none"  # type: ignore[return-value]


@dataclass(frozen=True)
class Mitigation:
    """How to rewrite one post: *action*, and the From it gets (``"Ann via list" <alias>``)."""

    action: Literal["munge", "wrap"]
    from_header: str


def display_name_of(message: EmailMessage) -> str:
    """The poster's name, else the local part of their address."""
    try:
        header = message["From"]
        mailboxes = getattr(header, "addresses", ())
        if mailboxes and mailboxes[0].display_name:
            return str(mailboxes[0].display_name)
    except (ValueError, LookupError, IndexError):
        pass
    return parseaddr(str(message.get("From", "")))[1].partition("@")[0]


def mitigate(message: EmailMessage, mitigation: Mitigation) -> EmailMessage:
    """The post as it must go out to pass the poster's DMARC policy."""
    if mitigation.action == "munge":
        return munge(message, mitigation.from_header)
    return wrap(message, mitigation.from_header)


def munge(message: EmailMessage, from_header: str) -> EmailMessage:
    """From the list-domain alias; the poster's own signature no longer claims the message."""
    for name in ("From", "Sender", "DKIM-Signature"):
        del message[name]
    message["From"] = from_header
    return message


def wrap(message: EmailMessage, from_header: str) -> EmailMessage:
    """A new message from the alias whose only part is the untouched original."""
    outer = EmailMessage(policy=MAIL_POLICY)
    for name in WRAP_KEEPS:
        for value in message.get_all(name, []):
            outer[name] = value
    outer["From"] = from_header
    outer["MIME-Version"] = "1.0"
    outer.set_payload([_as_attachment(message)])
    set_header(outer, "Content-Type", "multipart/mixed")
    return outer


def _as_attachment(message: EmailMessage) -> EmailMessage:
    part = EmailMessage(policy=MAIL_POLICY)
    part["Content-Type"] = "message/rfc822"
    part["Content-Disposition"] = "inline"
    part.set_payload([message])
    return part
