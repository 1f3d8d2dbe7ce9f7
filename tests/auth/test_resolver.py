"""The resolver through a real (stub) DNS server: a failed lookup is remembered for a while,
so a nameserver that never answers costs its timeout once, not once a post."""

from __future__ import annotations

import pytest
from dnsstub import DnsStub

from listserv.auth.resolver import DnsFailure, Resolver
from listserv.config import DnsConfig


@pytest.fixture
def resolver(dns_stub: DnsStub) -> Resolver:
    return Resolver(DnsConfig(nameservers=[dns_stub.address], timeout=0.3))


@pytest.mark.parametrize("failure", ["timeout", "servfail"])
def test_a_failed_lookup_is_not_asked_again_at_once(
    resolver: Resolver, dns_stub: DnsStub, failure: str
) -> None:
    dns_stub.failures["_dmarc.down.example"] = failure
    with pytest.raises(DnsFailure):
        resolver.txt("_dmarc.down.example")
    asked = dns_stub.queries.count(("_dmarc.down.example", "TXT"))
    assert asked >= 1
    with pytest.raises(DnsFailure, match="failed less than a minute ago"):
        resolver.txt("_DMARC.down.example")
    assert dns_stub.queries.count(("_dmarc.down.example", "TXT")) == asked
    # Other names and other types are still asked.
    dns_stub.records["_dmarc.up.example"] = ["v=DMARC1; p=none"]
    assert resolver.txt("_dmarc.up.example") == ["v=DMARC1; p=none"]
    with pytest.raises(DnsFailure):
        resolver.query("_dmarc.down.example", "A")
    assert ("_dmarc.down.example", "A") in dns_stub.queries


def test_answers_and_absent_records_are_kept_without_asking_again(
    resolver: Resolver, dns_stub: DnsStub
) -> None:
    dns_stub.records["_dmarc.kept.example"] = ["v=DMARC1; p=reject"]
    assert resolver.txt("_dmarc.kept.example") == ["v=DMARC1; p=reject"]
    assert resolver.txt("_dmarc.none.example") == []
    asked = len(dns_stub.queries)
    # Within the answer's TTL (300 s here) and the minute "no record" is kept for, nothing
    # is asked again, whatever the name's case or a trailing dot.
    dns_stub.records["_dmarc.none.example"] = ["v=DMARC1; p=none"]
    for _ in range(3):
        assert resolver.txt("_DMARC.kept.example.") == ["v=DMARC1; p=reject"]
        assert resolver.txt("_dmarc.none.example") == []
    assert len(dns_stub.queries) == asked
