"""Signed VERP bounce addresses: ``NAME-bounces+local=domain+SIG@domain``.

A bounce or spam complaint sent to a member's VERP address names that member whatever the
report says, so anyone who can write the address can have a member's score raised or their
subscription ended. The address is therefore proof only when we issued it: SIG is an HMAC of
the list and the member under the server's secret (``[web] secret_file``, used whether or not
the web endpoint runs). An unsigned ``local=domain`` is at most a hint.

SIG is lower-case base32: addresses are matched lower-cased from RCPT on, and some MTAs change
the case of local parts.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from listserv.auth.keyed import base32_lower, hmac_sha256
from listserv.auth.one_click import load_secret
from listserv.config import Config, WebConfig
from listserv.mail.addresses import ATOM, InvalidAddress, list_address, normalize

SIGNATURE_BYTES = 10  # 80 bits: 16 base32 characters
DOMAIN_SEPARATOR = b"listserv verp\0"


def secret_path(config: Config) -> Path:
    return config.resolve((config.web or WebConfig()).secret_file)


def verp_secret(config: Config) -> bytes:
    """The key VERP addresses are signed with (created, mode 0600, on first use)."""
    return load_secret(secret_path(config))


def _signature(secret: bytes, list_name: str, member: str) -> str:
    payload = DOMAIN_SEPARATOR + f"{list_name}\n{member.lower()}".encode()
    return base32_lower(hmac_sha256(secret)(payload)[:SIGNATURE_BYTES])


def verp_address(secret: bytes, list_name: str, domain: str, member: str) -> str:
    """``NAME-bounces+local=domain+SIG@domain``; the plain bounce address for a member whose
    local part cannot be carried (quoted)."""
    local, _, member_domain = member.rpartition("@")
    if not ATOM.match(local):
        return list_address(list_name, domain, "bounces")
    detail = f"{local}={member_domain}+{_signature(secret, list_name, member)}"
    return list_address(list_name, domain, "bounces", detail)


def _read(detail: str) -> tuple[str | None, str]:
    """(member address, signature) of ``local=domain[+SIG]``: a domain has no ``+`` and a
    signature no ``=``, while a local part may have both."""
    local, eq, rest = detail.rpartition("=")
    if not eq:
        return None, ""
    domain, _, signature = rest.partition("+")
    try:
        return normalize(f"{local}@{domain}"), signature
    except InvalidAddress:
        return None, ""


def verp_hint(detail: str) -> str | None:
    """The member address a VERP detail names, signed or not: a hint for the record, never
    grounds to act."""
    return _read(detail)[0]


def verp_member(secret: bytes, list_name: str, detail: str) -> str | None:
    """The member a VERP detail names, only when its signature is ours."""
    address, signature = _read(detail)
    if address is None or not signature:
        return None
    expected = _signature(secret, list_name, address)
    return address if hmac.compare_digest(signature.lower(), expected) else None
