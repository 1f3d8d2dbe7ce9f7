"""DMARC policy lookup through a real (stub) DNS server, and the From rewrites on plain
messages."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser

import pytest
from dnsstub import DnsStub
from support import make_message

from listserv.auth.dmarc import (
    Mitigation,
    lookup_policy,
    mitigate,
    organizational_domain,
    parse_record,
)
from listserv.auth.resolver import Resolver
from listserv.config import DnsConfig
from listserv.mail.codec import parse, to_bytes

ALIAS_FROM = "Ann via test <test+p-abc@lists.example.org>"


@pytest.fixture
def resolver(dns_stub: DnsStub) -> Resolver:
    return Resolver(DnsConfig(nameservers=[dns_stub.address], timeout=0.3))


def test_record_parsing() -> None:
    assert parse_record("v=DMARC1; p=reject; sp=none; rua=mailto:a@b.c") == {
        "v": "DMARC1",
        "p": "reject",
        "sp": "none",
        "rua": "mailto:a@b.c",
    }
    assert parse_record("v=spf1 -all") is None
    assert parse_record("p=reject; v=DMARC1") is None


def test_organizational_domain_follows_the_public_suffix_list() -> None:
    assert organizational_domain("mail.example.co.uk") == "example.co.uk"
    assert organizational_domain("a.b.mail.ru") == "mail.ru"
    assert organizational_domain("gmail.com") == "gmail.com"
    assert organizational_domain("mail.reject-dmarc.example") == "reject-dmarc.example"
    assert organizational_domain("Mail.Example.KZ.") == "example.kz"
    assert organizational_domain("co.uk") == "co.uk"


@pytest.mark.parametrize(
    ("records", "domain", "expected"),
    [
        ({"_dmarc.gmail.com": ["v=DMARC1; p=reject"]}, "gmail.com", "reject"),
        ({"_dmarc.yandex.ru": ["v=DMARC1; p=quarantine; pct=100"]}, "yandex.ru", "quarantine"),
        ({"_dmarc.corp.example": ["v=DMARC1; p=none"]}, "corp.example", "none"),
        ({}, "nopolicy.example", None),
        # A subdomain without a record of its own takes its organizational domain's sp=…
        ({"_dmarc.mail.ru": ["v=DMARC1; p=reject; sp=quarantine"]}, "bk.mail.ru", "quarantine"),
        # … else its p=.
        ({"_dmarc.example.co.uk": ["v=DMARC1; p=reject"]}, "news.example.co.uk", "reject"),
        ({"_dmarc.example.kz": ["v=DMARC1; p=reject", "v=DMARC1; p=none"]}, "example.kz", None),
    ],
)
def test_policy_lookup(resolver, dns_stub, records, domain, expected) -> None:
    dns_stub.records.update(records)
    assert lookup_policy(resolver, domain) == expected


@pytest.mark.parametrize("failure", ["timeout", "servfail"])
def test_dns_failure_counts_as_no_policy(resolver, dns_stub, failure, caplog) -> None:
    dns_stub.failures["_dmarc.slow.example"] = failure
    assert lookup_policy(resolver, "slow.example") is None
    assert "DMARC policy of slow.example unknown" in caplog.text


def test_answers_are_cached(resolver, dns_stub) -> None:
    dns_stub.records["_dmarc.gmail.com"] = ["v=DMARC1; p=reject"]
    for _ in range(3):
        assert lookup_policy(resolver, "gmail.com") == "reject"
    assert dns_stub.asked("_dmarc.gmail.com") == 1


def test_munge_puts_the_alias_in_from_and_drops_the_broken_signature() -> None:
    message = make_message("Ann <ann@gmail.com>", DKIM_Signature="v=1; d=gmail.com; b=x")
    message["Sender"] = "ann@gmail.com"
    munged = mitigate(message, Mitigation("munge", ALIAS_FROM))
    assert munged["From"] == ALIAS_FROM
    assert munged["Sender"] is None and munged["DKIM-Signature"] is None
    assert munged["Subject"] == "Hello" and munged["Reply-To"] is None
    assert munged.get_content() == "Hello, list.\n"


def test_wrap_sends_the_untouched_original_as_an_attachment() -> None:
    original = to_bytes(make_message("Ann <ann@gmail.com>", subject="Тема", Cc="c@x.example"))
    wrapped = mitigate(parse(original), Mitigation("wrap", ALIAS_FROM))
    reparsed = BytesParser(policy=policy.default).parsebytes(to_bytes(wrapped))
    assert reparsed["From"] == ALIAS_FROM
    assert reparsed["Subject"] == "Тема" and reparsed["Cc"] == "c@x.example"
    assert reparsed.get_content_type() == "multipart/mixed"
    (part,) = reparsed.iter_parts()
    assert part.get_content_type() == "message/rfc822"
    inner = part.get_content()
    assert inner["From"] == "Ann <ann@gmail.com>"
    assert inner.get_content().rstrip() == "Hello, list."
    # Byte for byte, so the poster's DKIM signature still verifies inside.
    assert original.rstrip(b"\r\n") in to_bytes(wrapped)
