"""Authentication of incoming mail: DKIM signatures, SPF of the connecting client, and DMARC
alignment of the From domain, recorded in an ``Authentication-Results`` header (RFC 8601) of
this server that members' providers (and ARC, RFC 8617) can rely on.

The checks run after intake answered 250, from the stored message and the peer address and
HELO intake stored with it. DNS trouble gives ``temperror`` results, never a lost post.
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import authres
import authres.dmarc
import dkim
import spf

from listserv.auth.dmarc import Policy, lookup_policy, organizational_domain
from listserv.auth.resolver import DnsFailure, Resolver
from listserv.mail.addresses import author_of, domain_of
from listserv.store.models import InboxMessage

log = logging.getLogger(__name__)
HEADER = "Authentication-Results"


@dataclass(frozen=True)
class DkimResult:
    result: str
    domain: str = ""
    selector: str = ""


@dataclass(frozen=True)
class Authentication:
    """What the checks found for one message."""

    dkim: list[DkimResult] = field(default_factory=list)
    spf: str = "none"
    mail_from: str = ""
    helo: str = ""
    from_domain: str = ""
    policy: Policy | None = None
    dmarc: str = "none"

    @property
    def fails_reject_policy(self) -> bool:
        """A DMARC failure from a domain that asks receivers to reject such mail."""
        return self.dmarc == "fail" and self.policy == "reject"

    def header_value(self, authserv_id: str) -> str:
        results: list[authres.AuthenticationResult] = []
        for signature in self.dkim or [DkimResult("none")]:
            results.append(
                authres.DKIMAuthenticationResult(
                    result=signature.result,
                    header_d=signature.domain or None,
                    header_s=signature.selector or None,
                )
            )
        results.append(
            authres.SPFAuthenticationResult(
                result=self.spf,
                smtp_mailfrom=self.mail_from or None,
                smtp_helo=None if self.mail_from else self.helo or None,
            )
        )
        results.append(
            authres.dmarc.DMARCAuthenticationResult(
                result=self.dmarc,
                header_from=self.from_domain or None,
                policy=self.policy,
            )
        )
        header = authres.AuthenticationResultsHeader(authserv_id=authserv_id, results=results)
        return str(header).partition(":")[2].strip()


def verify_dkim(raw: bytes, resolver: Resolver) -> list[DkimResult]:
    """One result per DKIM-Signature, top first; none for mail dkimpy cannot read."""
    try:
        checker = dkim.DKIM(raw)
    except dkim.MessageFormatError:
        return []
    count = sum(1 for name, _ in checker.headers if name.lower() == b"dkim-signature")
    results = []
    for index in range(count):
        checker = dkim.DKIM(raw)
        try:
            passed = checker.verify(index, dnsfunc=resolver.dkim_key)
            result = "pass" if passed else "fail"
        except DnsFailure:
            result = "temperror"
        except dkim.DKIMException:
            result = "permerror" if checker.domain is None else "fail"
        results.append(
            DkimResult(
                result,
                (checker.domain or b"").decode("ascii", "replace"),
                (checker.selector or b"").decode("ascii", "replace") if checker.domain else "",
            )
        )
    return results


# pyspf looks names up through its module-level ``DNSLookup``; ours sends them to the
# resolver of the check under way (a context variable, so concurrent checks do not mix).
_spf_resolver: contextvars.ContextVar[Resolver] = contextvars.ContextVar("spf_resolver")


def _spf_lookup(name: str, qtype: str, strict: bool = True, timeout: float = 20) -> list:
    resolver = _spf_resolver.get()
    try:
        records = resolver.query(name, qtype)
    except DnsFailure as error:
        raise spf.TempError(f"DNS {error}") from None
    found: list = []
    for record in records:
        if qtype in ("A", "AAAA"):
            found.append(((name, qtype), record.address))  # type: ignore[attr-defined]
        elif qtype == "MX":
            found.append(((name, qtype), (record.preference, record.exchange)))  # type: ignore[attr-defined]
        elif qtype == "PTR":
            found.append(((name, qtype), record.target.to_text(True)))  # type: ignore[attr-defined]
        elif qtype in ("TXT", "SPF"):
            found.append(((name, qtype), record.strings))  # type: ignore[attr-defined]
    return found


spf.DNSLookup = _spf_lookup


def check_spf(resolver: Resolver, peer_ip: str, mail_from: str, helo: str) -> str:
    """pyspf's result for the client at *peer_ip*: pass, fail, softfail, neutral, none…"""
    token = _spf_resolver.set(resolver)
    try:
        result, _explanation = spf.check2(
            i=peer_ip, s=mail_from or f"postmaster@{helo}", h=helo or "unknown"
        )
    except Exception as error:  # a malformed address or record must not lose the post
        log.warning("SPF check of %s from %s failed: %s", mail_from, peer_ip, error)
        result = "temperror"
    finally:
        _spf_resolver.reset(token)
    return str(result)


def aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment (RFC 7489 3.1): the same organizational domain."""
    return bool(domain) and organizational_domain(domain) == organizational_domain(from_domain)


def authenticate(
    resolver: Resolver,
    raw: bytes,
    message: Message,
    mail_from: str,
    peer_ip: str | None,
    helo: str | None,
) -> Authentication:
    signatures = verify_dkim(raw, resolver)
    envelope = mail_from if mail_from and mail_from != "<>" else ""
    spf_result = check_spf(resolver, peer_ip, envelope, helo or "") if peer_ip else "none"
    author = author_of(message) or ""
    from_domain = domain_of(author) if author else ""
    policy = lookup_policy(resolver, from_domain) if from_domain else None
    if policy is None:
        verdict = "none"
    else:
        spf_domain = domain_of(envelope) if envelope else (helo or "")
        passed = (spf_result == "pass" and aligned(spf_domain, from_domain)) or any(
            s.result == "pass" and aligned(s.domain, from_domain) for s in signatures
        )
        verdict = "pass" if passed else "fail"
    return Authentication(
        dkim=signatures,
        spf=spf_result,
        mail_from=envelope,
        helo=helo or "",
        from_domain=from_domain,
        policy=policy,
        dmarc=verdict,
    )


def authenticate_stored(
    resolver: Resolver, stored: InboxMessage, message: Message
) -> Authentication:
    """The checks for a message as intake received it: those kept with it when it was
    received (``intake.authenticate``), else done now."""
    if stored.authentication is not None:
        return from_json(stored.authentication)
    return authenticate(
        resolver, stored.raw, message, stored.mail_from, stored.peer_ip, stored.helo
    )


def without_comments(value: str) -> str:
    """*value* with its RFC 5322 comments (nested, with quoted-pairs) turned into spaces."""
    out, depth, escaped = [], 0, False
    for char in value:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
        elif char == "\\":
            escaped = True
            if depth == 0:
                out.append(char)
        elif char == "(":
            depth += 1
            out.append(" ")
        elif char == ")" and depth:
            depth -= 1
        elif depth == 0:
            out.append(char)
    return "".join(out)


def authserv_id_of(value: str, arc: bool = False) -> str:
    """The authserv-id of an (ARC-)Authentication-Results value (RFC 8601 2.2, RFC 8617
    4.1.1), lower-case, without a trailing dot: comments, a version after it (``id 1;``),
    quotes and ARC's ``i=N;`` skipped. Read leniently, never refused: authres rejects a
    whole header whose results are malformed, and a forged header must go all the same."""
    text = without_comments(value).strip()
    if arc and text.lower().startswith("i="):
        text = text.partition(";")[2]
    token = (text.partition(";")[0].split() or [""])[0].strip('"').rstrip(".").lower()
    try:
        return token.encode("idna").decode("ascii") if not token.isascii() else token
    except UnicodeError:
        return token


# The headers an incoming message may carry in our name; a forged one must not survive.
CLAIMING_HEADERS = {HEADER: False, "ARC-Authentication-Results": True}


def to_json(authentication: Authentication) -> dict[str, Any]:
    return dataclasses.asdict(authentication)


def from_json(data: dict[str, Any]) -> Authentication:
    signatures = [DkimResult(**signature) for signature in data.get("dkim", [])]
    return Authentication(**{**data, "dkim": signatures})


def claims_us(value: str, authserv_id: str, arc: bool = False) -> bool:
    """True for an Authentication-Results header written in our name (ours, or forged)."""
    return authserv_id_of(value, arc) == authserv_id.lower().rstrip(".")


def stamp(message: Message, authentication: Authentication, authserv_id: str) -> Message:
    """Replace any (ARC-)Authentication-Results claiming *authserv_id* with ours, on top."""
    for name, arc in CLAIMING_HEADERS.items():
        kept = [v for v in message.get_all(name, []) if not claims_us(str(v), authserv_id, arc)]
        del message[name]
        for value in kept:
            message[name] = value
    prepend(message, HEADER, authentication.header_value(authserv_id))
    return message


def prepend(message: Message, name: str, value: str) -> None:
    """Add a header above all others, where trace headers belong."""
    message._headers.insert(0, message.policy.header_store_parse(name, value))  # type: ignore[attr-defined]
