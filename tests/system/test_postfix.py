"""listserv behind a real Postfix, configured with the recipe in contrib/postfix/: mail comes
in through Postfix's SMTP port and reaches listserv over LMTP with XFORWARD; list mail leaves
through the same Postfix, whose relayhost is the test's sink. A post, a command, a held post
approved by reply and a bounce from the sink all go the whole way round, list mail arrives
DKIM-signed and intact, and an unknown list address is refused at RCPT by Postfix itself.

Postfix must be installed (``.ci/run`` installs it); the test skips only when it is missing
and ``CI`` is unset.
"""

from __future__ import annotations

import logging
import os
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage

import authres
import pytest
from dnsstub import DnsStub
from mailauth import dkim_verifies
from postfix_support import PrivatePostfix, postfix_available
from support import (
    DOMAIN,
    Received,
    RunningServer,
    Sink,
    cli,
    free_port,
    list_table,
    make_message,
)

from listserv.mail.codec import to_bytes
from listserv.store.lists import get_list
from listserv.store.members import find_member

if not postfix_available() and not os.environ.get("CI"):
    pytest.skip("Postfix is not installed (apt-get install postfix)", allow_module_level=True)

POSTER = "ann@ngo.example"  # a member; her server is 127.0.0.2 as SPF says
MEMBER = "bob@x.example"
BOUNCER = "gone@y.example"  # the sink refuses it: Postfix bounces to test-bounces
STRANGER = "eve@ngo.example"  # not a member: her post is held
MODERATOR = "mod@ngo.example"
CLIENT = "127.0.0.2"  # the senders' side of loopback, not Postfix's own 127.0.0.1


class Through:
    """listserv and a private Postfix in front of it; mail is sent to Postfix's port."""

    def __init__(self, server: RunningServer, postfix: PrivatePostfix) -> None:
        self.server = server
        self.postfix = postfix

    def smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.postfix.port, timeout=30, source_address=(CLIENT, 0))

    def send(self, sender: str, to: str, message: EmailMessage) -> None:
        with self.smtp() as client:
            client.sendmail(sender, [to], to_bytes(message))


@pytest.fixture
def through(start_server, sink: Sink, dns_stub: DnsStub, dkim_section) -> Iterator[Through]:
    dns_stub.records["ngo.example"] = [f"v=spf1 ip4:{CLIENT} -all"]
    sink.rcpt_reply[BOUNCER] = "550 5.1.1 <gone@y.example>: no such user here"
    postfix_port = free_port()
    server: RunningServer = start_server(
        lists=[list_table("test", moderators=[MODERATOR], bounce_score_interval_days=0.0)],
        server={"protocol": "lmtp"},
        dkim=dkim_section,
        delivery={"smarthost": f"127.0.0.1:{postfix_port}"},
    )
    postfix = PrivatePostfix(postfix_port, f"127.0.0.1:{server.port}", f"[127.0.0.1]:{sink.port}")
    try:
        postfix.start()
        added = cli(server.config_path, "members", "add", "test", "--no-welcome", POSTER)
        assert added.exit_code == 0, added.output
        added = cli(server.config_path, "members", "add", "test", "--no-welcome", MEMBER, BOUNCER)
        assert added.exit_code == 0, added.output
        yield Through(server, postfix)
    except BaseException:
        print(postfix.log())
        raise
    finally:
        postfix.stop()


def arrived(sink: Sink, to: str, subject: str) -> Received:
    got = sink.wait_for(
        lambda r: any(to in m.rcpt_tos and subject in str(m.message["Subject"]) for m in r), 30
    )
    return next(m for m in got if to in m.rcpt_tos and subject in str(m.message["Subject"]))


def spf_result(received: Received) -> str:
    (ours,) = [
        v for v in received.message.get_all("Authentication-Results") if v.startswith(DOMAIN)
    ]
    parsed = authres.AuthenticationResultsHeader.parse(f"Authentication-Results: {ours}")
    return next(r.result for r in parsed.results if r.method == "spf")


def bounce_score(server: RunningServer, address: str) -> float:
    with server.app.sessions() as session:
        member = find_member(session, get_list(session, "test", DOMAIN).id, address)
        return member.bounce_score if member else 0.0


def test_post_command_moderation_and_bounce_through_postfix(
    through: Through, sink: Sink, dns_stub: DnsStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mail.log")  # aiosmtpd's line per command
    caplog.set_level(logging.INFO, logger="listserv.delivery")
    server = through.server
    with through.smtp() as client:
        code, features = client.ehlo("client.ngo.example")
        assert code == 250 and b"SIZE 10485760" in features  # the recipe's limit = listserv's
        # Postfix asks listserv, and refuses an unknown list address at RCPT.
        client.mail(POSTER)
        code, reply = client.rcpt(f"nobody@{DOMAIN}")
        assert code == 550, reply

    # A post: to every member through Postfix, SPF judged against the poster's server.
    through.send(POSTER, f"test@{DOMAIN}", make_message(POSTER, f"test@{DOMAIN}", "news"))
    post = arrived(sink, MEMBER, "[test] news")
    assert post.mail_from == f"test-bounces@{DOMAIN}"
    assert spf_result(post) == "pass"
    commands = [r.getMessage() for r in caplog.records if r.name == "mail.log"]
    assert any(f"XFORWARD ADDR={CLIENT}" in c for c in commands), commands
    assert "Postfix" in str(post.message["Received"])
    assert dkim_verifies(post.raw, dns_stub)  # signed by listserv, intact through Postfix
    # The delivery line carries Postfix's queue id, to find the message in Postfix's log.
    delivered = server.wait_for_state(
        lambda: [r.getMessage() for r in caplog.records if "delivered outgoing" in r.getMessage()],
        "the delivery line",
    )
    assert "3 recipients, 250 2.0.0 Ok: queued as " in delivered[0], delivered

    # The sink refused one member: Postfix's bounce comes back to test-bounces and counts.
    server.wait_for_state(lambda: bounce_score(server, BOUNCER) > 0, "the bounce counted", 30)

    # A command and its reply.
    through.send(MEMBER, f"test-request@{DOMAIN}", make_message(MEMBER, subject="help"))
    reply = arrived(sink, MEMBER, "Results of your commands")
    assert reply.mail_from.startswith("test-bounces")

    # A held post, approved by a reply to the moderation request.
    through.send(STRANGER, f"test@{DOMAIN}", make_message(STRANGER, subject="from outside"))
    request = next(
        m
        for m in sink.wait_for(
            lambda r: any(
                MODERATOR in m.rcpt_tos and m.message["X-Listserv-Notice"] == "moderation_request"
                for m in r
            ),
            30,
        )
        if MODERATOR in m.rcpt_tos and m.message["X-Listserv-Notice"] == "moderation_request"
    )
    confirm = str(request.message["Reply-To"])
    assert confirm.startswith("test-confirm+")
    answer = make_message(MODERATOR, confirm, subject="Re: moderation", body="approve\n")
    through.send(MODERATOR, confirm, answer)
    approved = arrived(sink, MEMBER, "[test] from outside")
    assert approved.message["From"] == STRANGER
