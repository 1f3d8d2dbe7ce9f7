"""DKIM signing, DMARC rewriting, poster aliases, Authentication-Results and ARC, end to end:
the real server, the real sink, the stub DNS server, SQLite and PostgreSQL."""

from __future__ import annotations

import smtplib
from email import policy

import authres
import dkim
import pytest
from dnsstub import DnsStub
from mailauth import dkim_verifies, sign_as_poster, signing_domain_of, stub_dnsfunc
from sqlalchemy import select
from support import DOMAIN, Received, RunningServer, Sink, cli, list_table, make_message

from listserv.mail.codec import to_bytes
from listserv.store.models import HeldMessage

POSTER = "ann@gmail.com"
MEMBER = "bob@x.example"


def start_with_members(start_server, *addresses: str, **kwargs) -> RunningServer:
    server: RunningServer = start_server(**kwargs)
    result = cli(server.config_path, "members", "add", "test", "--no-welcome", *addresses)
    assert result.exit_code == 0, result.output
    return server


def post(server: RunningServer, sink: Sink, raw: bytes | None = None, **headers) -> Received:
    """Post as POSTER and return what MEMBER received."""
    message = raw or to_bytes(make_message(f"Ann Example <{POSTER}>", **headers))
    server.send(POSTER, f"test@{DOMAIN}", message)
    return sink.wait_for_recipients({MEMBER})[-1]


def from_address(received: Received) -> str:
    return received.message["From"].addresses[0].addr_spec


# ---- DKIM -----------------------------------------------------------------------------------


def test_posts_notices_and_forwards_are_signed_by_the_list_domain(
    start_server, sink: Sink, dns_stub: DnsStub, dkim_section
) -> None:
    lists = [list_table("test", nonmember_action="reject", owners=["owner@z.example"])]
    server = start_with_members(start_server, POSTER, MEMBER, lists=lists, dkim=dkim_section)
    got = post(server, sink)
    assert dkim_verifies(got.raw, dns_stub)
    assert signing_domain_of(got.raw) == DOMAIN
    # A notice: the refusal of a non-member's post.
    server.send("eve@y.example", f"test@{DOMAIN}", make_message("eve@y.example"))
    (refusal,) = sink.wait_for_recipients({"eve@y.example"})[-1:]
    assert refusal.message["X-Listserv-Notice"] == "rejected"
    assert dkim_verifies(refusal.raw, dns_stub)
    # A forward: mail to the owners.
    server.send("eve@y.example", f"test-owner@{DOMAIN}", make_message("eve@y.example"))
    forward = sink.wait_for_recipients({"owner@z.example"})[-1]
    assert dkim_verifies(forward.raw, dns_stub)
    assert signing_domain_of(forward.raw) == DOMAIN


def test_keygen_writes_the_key_and_prints_the_record(tmp_path, config_file) -> None:
    key = tmp_path / "keys" / "new.pem"
    path = config_file(dkim={"selector": "s2024", "private_key": str(key)})
    result = cli(path, "dkim", "keygen", "--bits", "1024")
    assert result.exit_code == 0, result.output
    assert key.read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    record = result.output.splitlines()[-1]
    assert record.startswith(f's2024._domainkey.{DOMAIN}. IN TXT ( "v=DKIM1; k=rsa; p=MIG')
    again = cli(path, "dkim", "keygen")
    assert again.exit_code == 1
    assert "exists; use --force" in again.output
    assert cli(path, "dkim", "keygen", "--force", "--bits", "1024").exit_code == 0


def test_a_missing_key_stops_every_command_naming_the_key(tmp_path, config_file) -> None:
    path = config_file(dkim={"selector": "ls1", "private_key": "keys/missing.pem"})
    for args in (("serve",), ("lists", "list")):
        result = cli(path, *args)
        assert result.exit_code == 1
        line = result.output.strip()
        assert line.startswith("listserv: dkim.private_key: cannot read ")
        assert line.endswith("keys/missing.pem: No such file or directory")


# ---- DMARC ----------------------------------------------------------------------------------


@pytest.mark.parametrize("policy_tag", ["reject", "quarantine"])
def test_post_from_an_enforcing_domain_comes_from_the_posters_alias(
    start_server, sink: Sink, dns_stub: DnsStub, dkim_section, policy_tag
) -> None:
    dns_stub.records["_dmarc.gmail.com"] = [f"v=DMARC1; p={policy_tag}"]
    server = start_with_members(start_server, POSTER, MEMBER, dkim=dkim_section)
    got = post(server, sink)
    sender = got.message["From"].addresses[0]
    assert sender.display_name == "Ann Example via test"
    local, _, domain = sender.addr_spec.partition("@")
    assert domain == DOMAIN and local.startswith("test+p-")
    assert len(local) - len("test+p-") >= 26  # ≥ 128 bits in base32
    assert POSTER not in got.message["From"]
    assert got.message["Reply-To"] is None
    assert dkim_verifies(got.raw, dns_stub)
    # The same poster keeps the same alias.
    sink.clear()
    assert from_address(post(server, sink)) == sender.addr_spec


@pytest.mark.parametrize(
    ("records", "poster", "munged"),
    [
        ({"_dmarc.gmail.com": ["v=DMARC1; p=none"]}, "ann@gmail.com", False),
        ({}, "ann@gmail.com", False),
        ({"_dmarc.mail.ru": ["v=DMARC1; p=reject"]}, "ann@bk.mail.ru", True),
        ({"_dmarc.mail.ru": ["v=DMARC1; p=reject; sp=none"]}, "ann@bk.mail.ru", False),
        # Under a top-level domain the suffix list does not know (RFC 7489 3.2: the
        # organizational domain is one label below it): the 2019 list said "example".
        (
            {"_dmarc.reject-dmarc.example": ["v=DMARC1; p=reject"]},
            "a@mail.reject-dmarc.example",
            True,
        ),
    ],
)
def test_only_enforcing_policies_rewrite_the_from(
    start_server, sink: Sink, dns_stub: DnsStub, records, poster, munged
) -> None:
    dns_stub.records.update(records)
    server = start_with_members(start_server, poster, MEMBER)
    server.send(poster, f"test@{DOMAIN}", make_message(f"Ann <{poster}>"))
    got = sink.wait_for_recipients({MEMBER})[-1]
    assert (from_address(got) != poster) is munged


def test_a_dns_timeout_never_blocks_the_post(start_server, sink: Sink, dns_stub) -> None:
    dns_stub.failures["_dmarc.gmail.com"] = "timeout"
    server = start_with_members(start_server, POSTER, MEMBER)
    got = post(server, sink)
    assert from_address(got) == POSTER
    assert got.message["Subject"] == "[test] Hello"


def test_dmarc_always_rewrites_every_post_in_the_lists_language(start_server, sink: Sink) -> None:
    lists = [list_table("test", dmarc_always=True, reply_to="list", language="ru")]
    server = start_with_members(start_server, POSTER, MEMBER, lists=lists)
    got = post(server, sink)
    assert from_address(got).startswith("test+p-")
    assert got.message["From"].addresses[0].display_name == "Ann Example через test"
    # "Reply" with reply_to = list goes to the list; the alias still allows a private one.
    assert got.message["Reply-To"] == f"test@{DOMAIN}"


def test_wrap_mode_attaches_the_untouched_original(
    start_server, sink: Sink, dns_stub: DnsStub, dkim_section
) -> None:
    dns_stub.records["_dmarc.gmail.com"] = ["v=DMARC1; p=reject"]
    lists = [list_table("test", dmarc="wrap")]
    server = start_with_members(start_server, POSTER, MEMBER, lists=lists, dkim=dkim_section)
    original = sign_as_poster(
        to_bytes(make_message(f"Ann <{POSTER}>", subject="Вопрос")), dns_stub, "gmail.com"
    )
    got = post(server, sink, original)
    message = got.message
    assert from_address(got).startswith("test+p-")
    assert message["Subject"] == "[test] Вопрос"
    assert message["List-Id"] == f'"Test list test" <test.{DOMAIN}>'
    parts = list(message.iter_parts())
    assert parts[0].get_content_type() == "message/rfc822"
    inner_raw = parts[0].get_payload(0).as_bytes(policy=policy.SMTP)
    # The poster's own signature still holds on the attached original, and ours on the whole.
    assert dkim.verify(inner_raw, dnsfunc=stub_dnsfunc(dns_stub))
    assert dkim_verifies(got.raw, dns_stub)


def test_none_mode_leaves_the_from_alone(start_server, sink: Sink, dns_stub) -> None:
    dns_stub.records["_dmarc.gmail.com"] = ["v=DMARC1; p=reject"]
    server = start_with_members(
        start_server, POSTER, MEMBER, lists=[list_table("test", dmarc="none")]
    )
    assert from_address(post(server, sink)) == POSTER


# ---- poster aliases -------------------------------------------------------------------------


def test_the_alias_forwards_a_private_reply_to_the_poster_only(
    start_server, sink: Sink, dns_stub: DnsStub, dkim_section
) -> None:
    dns_stub.records["_dmarc.gmail.com"] = ["v=DMARC1; p=reject"]
    server = start_with_members(start_server, POSTER, MEMBER, "carl@z.example", dkim=dkim_section)
    alias = from_address(post(server, sink))
    sink.clear()
    reply = make_message(MEMBER, to=alias, subject="Re: private")
    server.send(MEMBER, alias, reply)
    (forwarded,) = sink.wait_for_recipients({POSTER})
    assert forwarded.rcpt_tos == [POSTER]
    assert forwarded.mail_from == f"test-bounces@{DOMAIN}"
    assert forwarded.message["Subject"] == "Re: private"
    assert forwarded.message["From"] == MEMBER
    assert dkim_verifies(forwarded.raw, dns_stub)
    # Nobody else got it: a later post reaches the members, the private reply still only Ann.
    post(server, sink, subject="later")
    private = [r for r in sink.received if r.message["Subject"] == "Re: private"]
    assert [r.rcpt_tos for r in private] == [[POSTER]]


def test_unknown_and_revoked_aliases_are_refused(start_server, sink: Sink) -> None:
    server = start_with_members(
        start_server, POSTER, MEMBER, lists=[list_table("test", dmarc_always=True)]
    )
    alias = from_address(post(server, sink))
    guessed = f"test+p-{'a' * 32}@{DOMAIN}"
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        server.send(MEMBER, guessed, make_message(MEMBER, to=guessed))
    assert refused.value.recipients[guessed][0] == 550
    listed = cli(server.config_path, "aliases", "list", "test", "--json")
    assert listed.exit_code == 0 and alias in listed.output and POSTER in listed.output
    result = cli(server.config_path, "aliases", "revoke", "test", alias)
    assert result.exit_code == 0, result.output
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        server.send(MEMBER, alias, make_message(MEMBER, to=alias))
    assert refused.value.recipients[alias][0] == 550
    assert cli(server.config_path, "aliases", "revoke", "test", alias).exit_code == 1
    # The next post gets a fresh alias.
    sink.clear()
    fresh = from_address(post(server, sink))
    assert fresh.startswith("test+p-") and fresh != alias


# ---- incoming authentication and ARC --------------------------------------------------------


def test_authentication_results_of_a_signed_post(
    start_server, sink: Sink, dns_stub: DnsStub, dkim_section
) -> None:
    poster = "ann@ngo.example"
    dns_stub.records["ngo.example"] = ["v=spf1 ip4:127.0.0.1 -all"]
    dns_stub.records["_dmarc.ngo.example"] = ["v=DMARC1; p=none"]
    server = start_with_members(start_server, poster, MEMBER, dkim=dkim_section)
    message = make_message(f"Ann <{poster}>")
    message["Authentication-Results"] = f"{DOMAIN}; dkim=pass header.d=forged.example"
    message["Authentication-Results"] = "mx.upstream.example; spf=pass smtp.mailfrom=x@y.z"
    # Claims of our authserv-id however RFC 8601 lets them be written: a version, a comment,
    # a trailing dot, other case, and ARC's own copy of the results.
    for forged in (
        f"{DOMAIN} 1; dkim=pass header.d=forged1.example",
        f"(trusted) {DOMAIN}; dkim=pass header.d=forged2.example",
        f"{DOMAIN}.; dkim=pass header.d=forged3.example",
        f"{DOMAIN.upper()} (our MX) ; dkim=pass header.d=forged4.example",
    ):
        message["Authentication-Results"] = forged
    message["ARC-Authentication-Results"] = f"i=1; {DOMAIN}; dkim=pass header.d=forged5.example"
    raw = sign_as_poster(to_bytes(message), dns_stub, "ngo.example")
    server.send(poster, f"test@{DOMAIN}", raw)
    got = sink.wait_for_recipients({MEMBER})[-1]
    values = [str(v) for v in got.message.get_all("Authentication-Results")]
    ours = [v for v in values if v.startswith(DOMAIN)]
    assert len(ours) == 1 and b"forged" not in got.raw
    assert any(v.startswith("mx.upstream.example") for v in values)
    results = {
        r.method: r
        for r in authres.AuthenticationResultsHeader.parse(
            "Authentication-Results: " + ours[0]
        ).results
    }
    assert results["dkim"].result == "pass" and results["dkim"].header_d == "ngo.example"
    assert results["spf"].result == "pass" and results["spf"].smtp_mailfrom == poster
    assert results["dmarc"].result == "pass"
    # The ARC set carries these results and verifies, with our DKIM signature.
    cv, sets, reason = dkim.arc_verify(got.raw, dnsfunc=stub_dnsfunc(dns_stub))
    assert cv == b"pass", reason
    assert b"dkim=pass" in sets[0]["aar-value"] and b"spf=pass" in sets[0]["aar-value"]
    assert dkim_verifies(got.raw, dns_stub)


def test_a_forged_post_from_a_reject_domain_is_held_when_asked(
    start_server, sink: Sink, dns_stub: DnsStub
) -> None:
    dns_stub.records["bank.example"] = ["v=spf1 ip4:192.0.2.1 -all"]
    dns_stub.records["_dmarc.bank.example"] = ["v=DMARC1; p=reject"]
    lists = [list_table("test", dmarc_hold_failures=True, moderators=["boss@bank.example"])]
    server = start_with_members(start_server, POSTER, MEMBER, lists=lists)
    server.send("boss@bank.example", f"test@{DOMAIN}", make_message("boss@bank.example"))
    post(server, sink, subject="genuine")
    assert all(r.message["From"] != "boss@bank.example" for r in sink.received)
    with server.app.sessions() as session:
        (held,) = session.scalars(select(HeldMessage)).all()
    assert (held.sender, held.rule) == ("boss@bank.example", "dmarc-failure")
