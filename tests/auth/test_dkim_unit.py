"""The signer on plain messages: DKIM signatures and ARC sets that dkimpy verifies."""

from __future__ import annotations

import re

import dkim
import pytest
from dnsstub import DnsStub
from mailauth import dkim_verifies, publish_key, stub_dnsfunc

from listserv.auth.dkim import Signer, canonical_body, dns_record, generate_key, split_head

DOMAIN = "lists.example.org"
RAW = (
    b"From: Ann <ann@example.com>\r\n"
    b"To: test@lists.example.org\r\n"
    b"Subject: =?utf-8?b?0J/RgNC40LLQtdGC?=\r\n"
    b"Message-ID: <1@example.com>\r\n"
    b"List-Id: <test.lists.example.org>\r\n"
    b"Received: from mx by us\r\n"
    b"\r\n"
    b"Hello  there \r\n\r\n\r\n"
)


@pytest.fixture
def stub() -> DnsStub:
    return DnsStub()  # records only: these tests look keys up without a socket


@pytest.fixture
def signer(stub: DnsStub) -> Signer:
    pem = publish_key(stub, "ls1", DOMAIN, "list")
    return Signer(pem, "ls1", DOMAIN, DOMAIN)


def tags(raw: bytes, header: bytes = b"dkim-signature") -> dict[bytes, bytes]:
    headers, _ = dkim.rfc822_parse(raw)
    value = next(v for n, v in headers if n.lower() == header)
    return dkim.util.parse_tag_value(value)


def test_signature_verifies_with_dkimpy_and_names_the_list_domain(
    signer: Signer, stub: DnsStub
) -> None:
    signed = signer.sign(RAW)
    assert signed.startswith(b"DKIM-Signature: ") and signed.endswith(RAW)
    assert dkim_verifies(signed, stub)
    fields = tags(signed)
    assert fields[b"d"] == b"lists.example.org" and fields[b"s"] == b"ls1"
    assert fields[b"a"] == b"rsa-sha256" and fields[b"c"] == b"relaxed/relaxed"
    signed_headers = re.sub(rb"\s+", b"", fields[b"h"]).split(b":")
    assert {b"from", b"to", b"subject", b"message-id", b"list-id"} <= set(signed_headers)
    assert b"received" not in signed_headers
    # From is signed once more than it occurs, so no second From can be added.
    assert signed_headers.count(b"from") == 2


def test_a_changed_message_no_longer_verifies(signer: Signer, stub: DnsStub) -> None:
    signed = signer.sign(RAW)
    assert not dkim_verifies(signed.replace(b"Hello", b"Hullo"), stub)
    assert not dkim_verifies(signed.replace(b"To: test@", b"To: evil@"), stub)
    forged_from = b"From: Mallory <m@evil.example>\r\n" + signed
    assert not dkim_verifies(forged_from, stub)


def test_one_body_for_many_recipients_is_hashed_once(signer: Signer, stub: DnsStub) -> None:
    for recipient in (b"a@x.example", b"b@y.example", b"c@z.example"):
        signed = signer.sign(RAW.replace(b"test@lists.example.org", recipient))
        assert dkim_verifies(signed, stub)
    assert len(signer._body_hashes) == 1


def test_arc_set_records_our_results_and_verifies(signer: Signer, stub: DnsStub) -> None:
    raw = b"Authentication-Results: lists.example.org; spf=pass smtp.mailfrom=ann@example.com\r\n"
    sealed = signer.seal(signer.sign(raw + RAW))
    assert sealed.startswith(b"ARC-Seal: i=1; cv=none;")
    cv, results, reason = dkim.arc_verify(sealed, dnsfunc=stub_dnsfunc(stub))
    assert cv == b"pass", reason
    assert b"spf=pass" in results[0]["aar-value"]
    assert dkim_verifies(sealed, stub)


def test_nothing_to_seal_without_our_results(signer: Signer) -> None:
    other = b"Authentication-Results: mx.example.com; spf=pass smtp.mailfrom=a@b.example\r\n"
    assert signer.seal(other + RAW) == other + RAW


def test_dns_record_splits_the_key_in_255_character_strings(tmp_path) -> None:
    public = generate_key(tmp_path / "k.pem", 2048)
    record = dns_record("ls1", DOMAIN, public)
    assert record.startswith("ls1._domainkey.lists.example.org. IN TXT ( ")
    assert record.endswith('" )')
    strings = re.findall(r'"([^"]*)"', record)
    assert len(strings) == 2 and len(strings[0]) == 255
    assert "".join(strings).startswith("v=DKIM1; k=rsa; p=MIIB")
    assert oct((tmp_path / "k.pem").stat().st_mode & 0o777) == "0o600"


def test_mail_dkimpy_cannot_read_still_goes_out(signer: Signer, caplog) -> None:
    no_from = RAW.replace(b"From: Ann <ann@example.com>\r\n", b"")
    ours = b"Authentication-Results: lists.example.org; spf=none\r\n"
    assert signer.seal(ours + no_from) == ours + no_from
    broken = b"Not a header line\r\n" + RAW
    assert signer.sign(broken) == broken
    assert "not ARC-sealed" in caplog.text and "not DKIM-signed" in caplog.text


MARKER = b"lsvlink0123456789abcdef"
# A personalized post as delivery keeps it: the member's link where the marker stands, in
# List-Unsubscribe and in the footer.
COPY_HEAD = (
    b"From: =?utf-8?b?0JDQu9C40Y8=?= <aliya@ngo.example>\r\n"
    b"To: test@lists.example.org\r\n"
    b"Subject: a subject folded\r\n\tover  two lines \r\n"
    b"Message-ID: <1@example.com>\r\n"
    b"List-Id: =?utf-8?b?0K3QutC+0LvQvtCz0LjRjw==?=\r\n <test.lists.example.org>\r\n"
    b"List-Unsubscribe: <MARK>, <mailto:test-leave@lists.example.org>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
)


@pytest.mark.parametrize(
    "body",
    [
        b"Hello  there \r\n\r\nUnsubscribe: MARK\r\n\r\n\r\n",
        b"bare\nline ends \t\nlink:\t MARK  \nmore MARK\n",
        b"MARK at the start and at the end: MARK",
        "Алия Нурланқызы жазды:\r\n\r\n-- \r\nОтписаться: MARK\r\n".encode(),
        "no link in this footer, Алия  \r\n\r\n".encode(),
        b"",
    ],
)
def test_every_personalized_copy_verifies(signer: Signer, stub: DnsStub, body: bytes) -> None:
    template = (COPY_HEAD + b"\r\n" + body).replace(b"MARK", MARKER)
    sign = signer.copy_signer(template, MARKER)
    links = [b"https://lists.example.org/u/dGVzdA.c2ln", b"with space", b"tab\there", b""]
    for link in links:
        copy = link.join(template.split(MARKER))
        signed = sign(link) + copy
        assert dkim_verifies(signed, stub), (body, link)
        assert tags(signed)[b"bh"] == signer.body_hash(split_head(copy)[1])
        header = signed[: -len(copy)].split(b"\r\n")
        assert max(len(line) for line in header) <= 78
    forged = sign(links[0]) + links[1].join(template.split(MARKER))
    assert not dkim_verifies(forged, stub)


def test_copies_of_a_post_dkimpy_cannot_read_go_out_unsigned(signer: Signer, caplog) -> None:
    sign = signer.copy_signer(b"Not a header line\r\n" + COPY_HEAD, b"MARK")
    assert sign(b"https://lists.example.org/u/x") == b""
    assert "not DKIM-signed" in caplog.text


def test_relaxed_body_canonicalization() -> None:
    assert canonical_body(b"a \t b  \n\n") == b"a b\r\n"
