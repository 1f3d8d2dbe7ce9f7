"""Mail addresses: normalising them, and reading what a recipient address asks of a list."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import Message
from email.utils import getaddresses, parseaddr
from functools import lru_cache

from listserv.mail.codec import MAIL_POLICY

ROLES = {
    "request": "request",
    "join": "join",
    "subscribe": "join",
    "leave": "leave",
    "unsubscribe": "leave",
    "owner": "owner",
    "bounces": "bounces",
    "confirm": "confirm",
}
# Roles whose address may carry "+DETAIL" (a token, or a VERP-encoded recipient).
DETAIL_ROLES = {"confirm", "bounces"}
# ``NAME+p-ALIAS@domain``: a poster's alias (see ``aliases``), the From of a rewritten post.
ALIAS_PREFIX = "p-"
# ``postmaster@domain``: no list's, the site's (RFC 5321 4.5.1).
POSTMASTER = "postmaster"
# A dot-atom local part (RFC 5322): no leading, trailing or doubled dots.
ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class InvalidAddress(ValueError):
    pass


def normalize(address: str) -> str:
    """``Local@Domain`` → ``Local@domain`` with the domain lower-case in IDNA A-label form.

    The local part keeps its case (RFC 5321 lets the receiving host decide) except that
    matching is done on the lower-cased whole, which is how members are stored.
    """
    address = address.strip().strip("<>")
    local, sep, domain = address.rpartition("@")
    if not sep or not local or not domain or " " in address or len(address) > 320:
        raise InvalidAddress(f"not a mail address: {address!r}")
    if not ATOM.match(local) and not (local.startswith('"') and local.endswith('"')):
        raise InvalidAddress(f"not a mail address: {address!r}")
    return f"{local.lower()}@{normalize_domain(domain)}"


def normalize_domain(domain: str) -> str:
    """``Мысал.Қаз`` → ``xn--80awbu3c.xn--80ao21a``: lower case, IDNA A-labels, two labels at
    least."""
    try:
        ascii_domain = domain.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise InvalidAddress(f"not a valid domain: {domain!r}") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(LABEL.match(label) for label in labels):
        raise InvalidAddress(f"not a valid domain: {domain!r}")
    return ascii_domain


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def sender_of(header_value: str | None) -> str | None:
    """The normalised address in a From (or Sender) header, or None."""
    if not header_value:
        return None
    _, address = parseaddr(str(header_value))
    try:
        return normalize(address) if address else None
    except InvalidAddress:
        return None


def author_of(message: Message) -> str | None:
    """``sender_of`` the message's From, read once per value written: the header registry's
    parse of an address is costly, and the same people post again and again."""
    value = next((v for k, v in message.raw_items() if k.lower() == "from"), None)
    if message.policy is MAIL_POLICY and isinstance(value, str):
        return _author(value)
    return sender_of(message.get("From"))


@lru_cache(maxsize=4096)
def _author(value: str) -> str | None:
    return sender_of(MAIL_POLICY.header_fetch_parse("From", value))


def addresses_in(*header_values: str | None) -> list[str]:
    """Every normalisable address named in the given To/Cc-like header values."""
    found = []
    for _, address in getaddresses([str(v) for v in header_values if v]):
        try:
            found.append(normalize(address))
        except InvalidAddress:
            continue
    return found


def format_address(display_name: str, address: str) -> str:
    """A header-safe ``"Name" <addr>``; the name is quoted and encoded by the email package."""
    local, _, domain = address.rpartition("@")
    return str(Address(display_name=display_name, username=local, domain=domain))


@dataclass(frozen=True)
class Target:
    """What a recipient address asks for: a list and a role (post, request, confirm…)."""

    list_name: str
    role: str
    detail: str = ""


def parse_recipient(address: str, domain: str, list_names: set[str]) -> Target | None:
    """Read ``NAME[-role][+detail]@domain``; None when it is not one of ours."""
    try:
        address = normalize(address)
    except InvalidAddress:
        return None
    local, _, rcpt_domain = address.rpartition("@")
    if rcpt_domain != domain.lower():
        return None
    if local == POSTMASTER:  # RFC 5321 4.5.1: every domain that takes mail has one
        return Target("", POSTMASTER)
    base, _, detail = local.partition("+")
    if base in list_names and not detail:
        return Target(base, "post")
    if base in list_names and detail.startswith(ALIAS_PREFIX) and len(detail) > len(ALIAS_PREFIX):
        return Target(base, "alias", detail[len(ALIAS_PREFIX) :])
    name, _, suffix = base.rpartition("-")
    role = ROLES.get(suffix)
    if role is None or name not in list_names:
        return None
    if detail and role not in DETAIL_ROLES:
        return None
    if role == "confirm" and not detail:
        return None
    return Target(name, role, detail)


def list_address(name: str, domain: str, role: str = "post", detail: str = "") -> str:
    if role == "alias":
        return f"{name}+{ALIAS_PREFIX}{detail}@{domain}"
    local = name if role == "post" else f"{name}-{role}"
    return f"{local}+{detail}@{domain}" if detail else f"{local}@{domain}"


def redacted(address: str) -> str:
    """*address* fit for a log: the ``+detail`` that may carry a token or alias left out."""
    local, at, domain = address.rpartition("@")
    base, plus, _ = local.partition("+")
    return f"{base}+…{at}{domain}" if plus else address
