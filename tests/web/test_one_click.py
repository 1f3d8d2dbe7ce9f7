"""One-click unsubscribe (RFC 8058) over a real socket, personalized copies, and feedback-loop
(ARF) complaints."""

from __future__ import annotations

import re
import smtplib
from pathlib import Path

import dkim
import httpx
import pytest
from dnsstub import DnsStub
from mailauth import stub_dnsfunc
from support import (
    DOMAIN,
    RunningServer,
    Sink,
    add,
    events,
    list_table,
    make_message,
    members_of,
)

BASE_URL = "https://lists.example.org/listserv"


def one_click_server(
    start_server, tmp_path: Path, dkim_section: dict | None = None, **settings: object
) -> RunningServer:
    return start_server(
        lists=[list_table("test", **settings)],
        web={
            "listen": "127.0.0.1:0",
            "base_url": BASE_URL,
            "secret_file": str(tmp_path / "keys" / "web.secret"),
        },
        **({"dkim": dkim_section} if dkim_section else {}),
    )


def local_url(server: RunningServer, url: str) -> str:
    """The member's public link, asked of the endpoint directly (no TLS proxy in tests)."""
    assert server.server.web is not None
    return url.replace(BASE_URL, f"http://127.0.0.1:{server.server.web.port}")


def post_and_collect_links(
    server: RunningServer, sink: Sink, members: set[str], envelopes: dict[str, str] | None = None
) -> dict[str, str]:
    """Each member's one-click link; *envelopes* gets each member's (signed) VERP address."""
    server.send("a@x.example", f"test@{DOMAIN}", make_message("a@x.example", subject="Новости"))
    got = sink.wait_for_recipients(members)
    links = {}
    for received in got:
        (rcpt,) = received.rcpt_tos
        local, domain = rcpt.split("@")
        verp = rf"test-bounces\+{re.escape(local)}={re.escape(domain)}\+[a-z2-7]{{16}}@{DOMAIN}"
        assert re.fullmatch(verp, received.mail_from), received.mail_from
        if envelopes is not None:
            envelopes[rcpt] = received.mail_from
        message = received.message
        header = message["List-Unsubscribe"]
        match = re.fullmatch(
            rf"<({re.escape(BASE_URL)}/u/[^>]+)>, <mailto:test-leave@{DOMAIN}>", header
        )
        assert match, header
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Subject"] == "[test] Новости"
        assert match.group(1) in message.get_content()  # the footer carries the same link
        links[rcpt] = match.group(1)
    assert len(set(links.values())) == len(members)
    return links


def test_one_click_post_unsubscribes_exactly_that_member(
    start_server, sink: Sink, tmp_path
) -> None:
    server = one_click_server(start_server, tmp_path, language="ru")
    add(server, "a@x.example", "b@y.example", "c@z.example")
    links = post_and_collect_links(server, sink, {"a@x.example", "b@y.example", "c@z.example"})
    assert (tmp_path / "keys" / "web.secret").stat().st_mode & 0o777 == 0o600

    with httpx.Client(timeout=10) as client:
        # Link scanners fetch with GET: a page with a button, nobody unsubscribed.
        page = client.get(local_url(server, links["b@y.example"]))
        assert page.status_code == 200
        assert 'method="post"' in page.text and "Отписаться" in page.text
        assert "b@y.example" in page.text
        # Scanners send HEAD too (``curl -I``): it shows the page's headers, nothing more.
        head = client.head(local_url(server, links["b@y.example"]))
        assert head.status_code == 200 and head.text == ""
        # Another member's signature on b's address, and a made-up token, are refused.
        a_payload, a_signature = links["a@x.example"].rsplit("/", 1)[1].split(".")
        b_payload = links["b@y.example"].rsplit("/", 1)[1].split(".")[0]
        forged = f"{BASE_URL}/u/{b_payload}.{a_signature}"
        assert client.post(local_url(server, forged)).status_code == 404
        made_up = f"{BASE_URL}/u/{a_payload}.AAAAAAAAAAAAAAAAAAAAAAAAAAA"
        assert client.post(local_url(server, made_up)).status_code == 404
        assert set(members_of(server.config_path, "test")) == {
            "a@x.example",
            "b@y.example",
            "c@z.example",
        }
        # What a mail provider sends when the member presses "Unsubscribe".
        done = client.post(
            local_url(server, links["b@y.example"]),
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert done.status_code == 200 and "Вы отписаны" in done.text
        assert set(members_of(server.config_path, "test")) == {"a@x.example", "c@z.example"}
        again = client.post(local_url(server, links["b@y.example"]))
        assert again.status_code == 200 and "не подписан на рассылку" in again.text
    assert ("b@y.example", "unsubscribe", "one-click link") in events(server)


def test_every_personalized_copy_is_dkim_signed_with_its_one_click_headers(
    start_server, sink: Sink, tmp_path, dns_stub: DnsStub, dkim_section
) -> None:
    server = one_click_server(start_server, tmp_path, dkim_section, language="kk")
    members = {"a@x.example", "b@y.example", "c@z.example", "d@w.example"}
    add(server, *members)
    links = post_and_collect_links(server, sink, members)
    copies = {m.rcpt_tos[0]: m.raw for m in sink.received if m.rcpt_tos[0] in members}
    assert set(copies) == members
    body_hashes = set()
    for rcpt, raw in copies.items():
        assert dkim.verify(raw, dnsfunc=stub_dnsfunc(dns_stub)), rcpt
        signature = dkim.DKIM(raw)
        signature.verify_headerprep()
        signed = set(b"".join(signature.signature_fields[b"h"].split()).split(b":"))
        assert {b"list-unsubscribe", b"list-unsubscribe-post", b"from"} <= signed
        assert signature.domain == DOMAIN.encode()
        body_hashes.add(signature.signature_fields[b"bh"])
        # Another member's link put in this member's List-Unsubscribe breaks the signature.
        other = next(link for address, link in links.items() if address != rcpt)
        head, body = raw.split(b"\r\n\r\n", 1)
        forged = head.replace(links[rcpt].encode(), other.encode()) + b"\r\n\r\n" + body
        assert forged != raw
        assert not dkim.verify(forged, dnsfunc=stub_dnsfunc(dns_stub)), rcpt
    assert len(body_hashes) == len(members)  # each footer carries the member's own link


FOLDED_POST = (
    "From: =?utf-8?b?0JDQu9C40Y8=?= <a@x.example>\r\n"
    f"To: test@{DOMAIN}\r\n"
    "Subject: =?utf-8?b?0KHQtdC80LjQvdCw0YAg0L/QviDRg9GB0YLQvtC50YfQuNCy0L7QvNGD?=\r\n"
    " =?utf-8?b?INGA0LDQt9Cy0LjRgtC40Y4=?=\r\n"
    "Message-ID: <folded@x.example>\r\n"
    "References: <one@x.example>\r\n\t<two@x.example>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: {cte}\r\n"
    "\r\n"
    "{body}"
)
DOTTED_BODY = "Қош келдіңіздер!\r\n.a line that starts with a dot\r\n..and two\r\n"


@pytest.mark.parametrize(
    ("settings", "cte", "body", "link_in_footer"),
    [
        # A footer naming the list in Kazakh, under a post with folded headers and dots.
        ({"title": "Экология — Алия Нурланқызы", "language": "kk"}, "8bit", DOTTED_BODY, True),
        ({"footer": False}, "8bit", DOTTED_BODY, False),
        # A base64 body would hide a link: the footer goes without one.
        ({"language": "ru"}, "base64", "0JrQvtC70LvQtdCz0Lgh\r\n", False),
    ],
)
def test_signed_copies_of_folded_dotted_and_footerless_posts_verify(
    start_server,
    sink: Sink,
    tmp_path,
    dns_stub: DnsStub,
    dkim_section,
    settings: dict,
    cte: str,
    body: str,
    link_in_footer: bool,
) -> None:
    server = one_click_server(start_server, tmp_path, dkim_section, posting="open", **settings)
    members = {"a@x.example", "b@y.example"}
    add(server, *members)
    server.send("a@x.example", f"test@{DOMAIN}", FOLDED_POST.format(cte=cte, body=body).encode())
    for received in sink.wait_for_recipients(members):
        raw, message = received.raw, received.message
        assert dkim.verify(raw, dnsfunc=stub_dnsfunc(dns_stub)), received.rcpt_tos
        link = re.match(r"<([^>]+)>", message["List-Unsubscribe"]).group(1)
        assert link.startswith(f"{BASE_URL}/u/")
        assert message["References"].split() == ["<one@x.example>", "<two@x.example>"]
        text = message.get_content().replace("\r\n", "\n")
        # The lines starting with dots arrive as they were written (dot-stuffed in transit).
        assert text.startswith(body.replace("\r\n", "\n") if cte == "8bit" else "Коллеги!")
        assert (link in text) == link_in_footer
        assert ("Экология — Алия Нурланқызы" in text) == ("title" in settings)


def test_the_page_escapes_what_it_shows(start_server, sink: Sink, tmp_path) -> None:
    server = one_click_server(start_server, tmp_path, posting="open")
    add(server, "o'neil&co@x.example")
    links = post_and_collect_links(server, sink, {"o'neil&co@x.example"})
    page = httpx.get(local_url(server, links["o'neil&co@x.example"]), timeout=10)
    assert "o&#39;neil&amp;co@x.example" in page.text and "neil&co" not in page.text


def arf(original_rcpt: str = "", returned_headers: str = "") -> bytes:
    """A feedback report (RFC 5965) as Mail.ru and Yahoo send them."""
    rcpt_line = f"Original-Rcpt-To: {original_rcpt}\r\n" if original_rcpt else ""
    return (
        "From: fbl@mail.example\r\n"
        f"To: test-bounces@{DOMAIN}\r\n"
        "Subject: FW: [test] Hello\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r\n'
        "\r\n--F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        "\r\n--F\r\nContent-Type: message/feedback-report\r\n\r\n"
        "Feedback-Type: abuse\r\nUser-Agent: FBL/1.0\r\nVersion: 1\r\n"
        f"{rcpt_line}Arrival-Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        "\r\n--F\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: a@x.example\r\nTo: test@{DOMAIN}\r\nSubject: [test] Hello\r\n{returned_headers}"
        "\r\n--F--\r\n"
    ).encode()


def test_feedback_reports_unsubscribe_only_members_named_by_our_signature(
    start_server, sink: Sink, tmp_path
) -> None:
    server = one_click_server(start_server, tmp_path)
    add(server, "a@x.example", "b@y.example", "c@z.example", "keep@w.example")
    envelopes: dict[str, str] = {}
    links = post_and_collect_links(
        server, sink, {"a@x.example", "b@y.example", "c@z.example", "keep@w.example"}, envelopes
    )
    # Anyone can write Original-Rcpt-To: a forged report naming a member changes nothing.
    server.send("", f"test-bounces@{DOMAIN}", arf(original_rcpt="a@x.example"))
    # Our signed VERP address, and (redacted report) our signed link in the returned headers.
    server.send("", envelopes["b@y.example"], arf())
    returned = f"List-Unsubscribe: <{links['c@z.example']}>,\r\n <mailto:test-leave@{DOMAIN}>\r\n"
    server.send("", f"test-bounces@{DOMAIN}", arf("redacted@z.example", returned))
    # The plain VERP form anyone could write is refused outright.
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        server.send("", f"test-bounces+keep=w.example@{DOMAIN}", arf())
    server.wait_for_state(
        lambda: len([e for e in events(server) if e[1] == "complaint"]) == 3,
        what="three complaints",
    )
    assert set(members_of(server.config_path, "test")) == {"a@x.example", "keep@w.example"}
    complaints = sorted(e for e in events(server) if e[1] == "complaint")
    assert complaints == [
        ("a@x.example", "complaint", "recorded: not proven (no signed VERP address or link)"),
        ("b@y.example", "complaint", "unsubscribed"),
        ("c@z.example", "complaint", "unsubscribed"),
    ]


def test_feedback_unsubscribe_can_be_turned_off(start_server, sink: Sink, tmp_path) -> None:
    server = start_server(lists=[list_table("test", feedback_unsubscribe=False)])
    add(server, "a@x.example")
    server.send("", f"test-bounces@{DOMAIN}", arf(original_rcpt="a@x.example"))
    server.wait_for_state(lambda: events(server), what="the complaint recorded")
    assert events(server) == [
        ("a@x.example", "complaint", "recorded: not proven (no signed VERP address or link)")
    ]
    assert "a@x.example" in members_of(server.config_path, "test")
