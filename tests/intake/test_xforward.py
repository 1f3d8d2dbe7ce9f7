"""Behind an MTA: SPF is judged against the client the trusted relay names (XFORWARD, else its
Received: header), never against the relay, and never on the word of an untrusted peer. The
real daemon over loopback SMTP/LMTP, the stub DNS, the real sink, SQLite and PostgreSQL."""

from __future__ import annotations

import re
import smtplib
from unittest.mock import patch

import authres
import pytest
from dnsstub import DnsStub
from hypothesis import given, settings
from hypothesis import strategies as st
from support import DOMAIN, RunningServer, Sink, cli, list_table, make_message

from listserv.intake import xforward
from listserv.intake.xforward import Client, parse_xforward, received_client
from listserv.mail.codec import to_bytes

POSTER = "ann@ngo.example"
MEMBER = "bob@x.example"
CLIENT_IP = "192.0.2.7"


def open_list(start_server, dns_stub: DnsStub, **sections) -> RunningServer:
    dns_stub.records["ngo.example"] = [f"v=spf1 ip4:{CLIENT_IP} -all"]
    server: RunningServer = start_server(lists=[list_table("test", posting="open")], **sections)
    assert cli(server.config_path, "members", "add", "test", "--no-welcome", MEMBER).exit_code == 0
    return server


def spf_seen(sink: Sink, subject: str) -> authres.AuthenticationResult:
    """The SPF result in our Authentication-Results of the post with *subject*."""
    got = sink.wait_for(lambda r: any(subject in str(m.message["Subject"]) for m in r))
    (post,) = [m for m in got if subject in str(m.message["Subject"])]
    (ours,) = [v for v in post.message.get_all("Authentication-Results") if v.startswith(DOMAIN)]
    parsed = authres.AuthenticationResultsHeader.parse(f"Authentication-Results: {ours}")
    (spf,) = [r for r in parsed.results if r.method == "spf"]
    return spf


def post(client: smtplib.SMTP, subject: str, received: str | None = None) -> None:
    message = make_message(POSTER, subject=subject)
    if received:
        message["Received"] = received
    client.sendmail(POSTER, [f"test@{DOMAIN}"], to_bytes(message))


def test_xforward_from_a_trusted_relay_names_the_client(
    start_server, sink: Sink, dns_stub: DnsStub
) -> None:
    server = open_list(start_server, dns_stub)
    with server.smtp() as client:
        code, features = client.ehlo("mx.lists.example.org")
        assert code == 250 and b"XFORWARD NAME ADDR" in features
        assert client.docmd("XFORWARD", f"NAME=mail.ngo.example ADDR={CLIENT_IP}")[0] == 250
        assert client.docmd("XFORWARD", "HELO=mail.ngo.example PROTO=ESMTP")[0] == 250
        post(client, "forwarded")
        # What XFORWARD said held for that transaction only: the next is the relay's own.
        post(client, "relay's own")
        assert client.docmd("XFORWARD", f"ADDR={CLIENT_IP}")[0] == 250
        client.rset()
        post(client, "after RSET")
        # Bad syntax, and XFORWARD inside a transaction, are refused with a precise code.
        assert client.docmd("XFORWARD", "COLOUR=blue")[0] == 501
        client.docmd("MAIL", f"FROM:<{POSTER}>")
        assert client.docmd("XFORWARD", f"ADDR={CLIENT_IP}")[0] == 503
    assert spf_seen(sink, "forwarded").result == "pass"
    assert spf_seen(sink, "relay's own").result == "fail"
    assert spf_seen(sink, "after RSET").result == "fail"


def test_the_received_header_of_a_trusted_relay_names_the_client(
    start_server, sink: Sink, dns_stub: DnsStub
) -> None:
    server = open_list(start_server, dns_stub)
    with server.smtp() as client:
        post(
            client,
            "postfix",
            f"from mail.ngo.example (mail.ngo.example [{CLIENT_IP}]) by mx.lists.example.org "
            "(Postfix) with ESMTPS id 4Xyz for <test@lists.example.org>; Mon, 1 Dec 2026",
        )
        post(
            client,
            "exim",
            f"from mail.ngo.example ([{CLIENT_IP}] helo=mail.ngo.example) by mx.lists.example.org "
            "with esmtp (Exim 4.96) id 1vQ-000; Mon, 1 Dec 2026",
        )
    assert spf_seen(sink, "postfix").result == "pass"
    assert spf_seen(sink, "exim").result == "pass"


def test_an_untrusted_peer_is_judged_itself(start_server, sink: Sink, dns_stub: DnsStub) -> None:
    server = open_list(start_server, dns_stub, server={"trusted_relays": ["198.51.100.0/24"]})
    with server.smtp() as client:
        code, features = client.ehlo("mx.lists.example.org")
        assert code == 250 and b"XFORWARD" not in features
        assert client.docmd("XFORWARD", f"ADDR={CLIENT_IP}")[0] == 550
        post(client, "forged", f"from mail.ngo.example (mail.ngo.example [{CLIENT_IP}]) by x")
    assert spf_seen(sink, "forged").result == "fail"


def test_lmtp_offers_xforward_at_lhlo(start_server, sink: Sink, dns_stub: DnsStub) -> None:
    server = open_list(start_server, dns_stub, server={"protocol": "lmtp"})
    with smtplib.LMTP("127.0.0.1", server.port, timeout=15) as client:
        code, features = client.ehlo("mx.lists.example.org")
        assert code == 250 and b"XFORWARD" in features
        assert client.docmd("XFORWARD", "ADDR=IPV6:2001:db8::7 HELO=[UNAVAILABLE]")[0] == 250
        assert client.docmd("XFORWARD", f"ADDR={CLIENT_IP}")[0] == 250
        post(client, "over lmtp")
    spf = spf_seen(sink, "over lmtp")
    assert spf.result == "pass"


@pytest.mark.parametrize(
    ("header", "client"),
    [
        (
            "from helo.example (mail.example [192.0.2.1]) by mx (Postfix) with ESMTP id 1",
            Client("192.0.2.1", "helo.example", "mail.example"),
        ),
        (
            "from helo.example (unknown [IPv6:2001:db8::1]) by mx (Postfix)",
            Client("2001:db8::1", "helo.example", None),
        ),
        (
            "from [192.0.2.9] (helo=laptop) by mx with esmtp (Exim 4.96)",
            Client("192.0.2.9", "laptop", None),
        ),
        (
            "from mail.example ([192.0.2.3]:4312 helo=hi.example) by mx with esmtps (Exim 4.97)",
            Client("192.0.2.3", "hi.example", "mail.example"),
        ),
        ("by mx.example (Postfix, from userid 0) id 4Xyz", Client()),
    ],
)
def test_received_header_forms(header: str, client: Client) -> None:
    assert received_client(f"Received: {header}\r\nSubject: x\r\n\r\nbody\r\n".encode()) == client


PIECES = [
    *(bytes([c]) for c in b"a1 :;[]()\t\r\n\xc3"),
    b"Received:",
    b"received: from ",
    b"[192.0.2.7]",
    b"helo=h",
    b"\r\n\r\n",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30), st.binary(max_size=40))
def test_received_is_read_from_the_header_block_as_from_the_whole(
    pieces: list[bytes], body: bytes
) -> None:
    raw = b"".join(pieces) + body
    # The whole message's reading: no end of the header block is ever found.
    with patch.object(xforward, "HEADER_END", re.compile(rb"(?!)")):
        whole = received_client(raw)
    assert received_client(raw) == whole


def test_xforward_values_are_xtext() -> None:
    assert parse_xforward("NAME=a+2Bb.example addr=192.0.2.1") == {
        "NAME": "a+b.example",
        "ADDR": "192.0.2.1",
    }
    with pytest.raises(ValueError):
        parse_xforward("")
