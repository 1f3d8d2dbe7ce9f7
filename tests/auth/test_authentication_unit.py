"""Checks of incoming mail against the stub DNS server, and the header recording them."""

from __future__ import annotations

import pytest
from dnsstub import DnsStub
from mailauth import sign_as_poster
from support import make_message

from listserv.auth.authentication import authenticate, stamp
from listserv.auth.resolver import Resolver
from listserv.config import DnsConfig
from listserv.mail.codec import parse, to_bytes

US = "lists.example.org"


@pytest.fixture
def resolver(dns_stub: DnsStub) -> Resolver:
    dns_stub.records["ngo.example"] = ["v=spf1 ip4:192.0.2.7 -all"]
    dns_stub.records["_dmarc.ngo.example"] = ["v=DMARC1; p=reject"]
    return Resolver(DnsConfig(nameservers=[dns_stub.address], timeout=0.3))


def check(resolver: Resolver, raw: bytes, peer: str):  # type: ignore[no-untyped-def]
    return authenticate(resolver, raw, parse(raw), "ann@ngo.example", peer, "mx.ngo.example")


def test_aligned_dkim_passes_dmarc_even_from_an_unlisted_ip(resolver, dns_stub) -> None:
    raw = sign_as_poster(to_bytes(make_message("ann@ngo.example")), dns_stub, "ngo.example")
    result = check(resolver, raw, "198.51.100.1")
    assert [(s.result, s.domain, s.selector) for s in result.dkim] == [
        ("pass", "ngo.example", "mx")
    ]
    assert (result.spf, result.dmarc, result.policy) == ("fail", "pass", "reject")
    assert not result.fails_reject_policy


def test_aligned_spf_passes_dmarc(resolver) -> None:
    result = check(resolver, to_bytes(make_message("ann@ngo.example")), "192.0.2.7")
    assert (result.spf, result.dmarc) == ("pass", "pass")
    assert result.header_value(US) == (
        f"{US}; dkim=none; spf=pass smtp.mailfrom=ann@ngo.example; "
        "dmarc=pass header.from=ngo.example policy.dmarc=reject"
    )


def test_unauthenticated_mail_from_a_reject_domain_fails(resolver, dns_stub) -> None:
    raw = sign_as_poster(to_bytes(make_message("ann@ngo.example")), dns_stub, "ngo.example")
    tampered = raw.replace(b"Hello, list.", b"Send money.")
    result = check(resolver, tampered, "198.51.100.1")
    assert result.dkim[0].result == "fail"
    assert result.dmarc == "fail" and result.fails_reject_policy


def test_dns_trouble_is_a_temporary_error_not_a_lost_post(resolver, dns_stub) -> None:
    dns_stub.failures["ngo.example"] = "servfail"
    dns_stub.failures["_dmarc.ngo.example"] = "servfail"
    result = check(resolver, to_bytes(make_message("ann@ngo.example")), "192.0.2.7")
    assert result.spf == "temperror" and result.dmarc == "none"


def test_stamp_replaces_results_claiming_our_name_only(resolver) -> None:
    message = make_message("ann@ngo.example")
    message["Authentication-Results"] = f"{US}; dkim=pass header.d=bank.example"
    message["Authentication-Results"] = "mx.upstream.example; spf=pass"
    result = check(resolver, to_bytes(message), "192.0.2.7")
    stamp(message, result, US)
    values = [str(v) for v in message.get_all("Authentication-Results")]
    assert values == [result.header_value(US), "mx.upstream.example; spf=pass"]
    assert next(iter(message.keys())) == "Authentication-Results"
