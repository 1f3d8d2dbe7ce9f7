"""Hostile input at intake over a real socket: oversized headers, and one slow message beside
the others."""

from __future__ import annotations

import smtplib
import time
import tracemalloc
from pathlib import Path

import pytest
from support import DOMAIN, RunningServer, Sink, cli, list_table, make_message

LIST = f"test@{DOMAIN}"


def folded_to(count: int) -> str:
    """A To header naming *count* addresses, folded into lines SMTP accepts."""
    lines, line = [], []
    for i in range(count):
        line.append(f"user{i}@example{i}.com")
        if len(line) == 30:
            lines.append(", ".join(line))
            line = []
    lines.append(", ".join(line))
    return ",\r\n ".join(x for x in lines if x)


def raw_post(to: str, subject: str = "big", extra: str = "") -> bytes:
    return (
        f"From: a@x.example\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject}@x.example>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        f"{extra}\r\nHello.\r\n"
    ).encode()


def open_list(start_server, **settings: object) -> RunningServer:
    server: RunningServer = start_server(lists=[list_table("test", posting="open", **settings)])
    result = cli(server.config_path, "members", "add", "--no-welcome", "test", "m@x.example")
    assert result.exit_code == 0, result.output
    return server


def data_reply(server: RunningServer, raw: bytes) -> tuple[int, bytes]:
    with server.smtp() as client:
        client.ehlo()
        assert client.mail("a@x.example")[0] == 250
        assert client.rcpt(LIST)[0] == 250
        return client.data(raw)


def test_oversized_header_fields_and_blocks_are_refused_at_data(start_server, sink: Sink) -> None:
    server = open_list(start_server)
    # A 1.2 MB To header once stalled the router for 21 s.
    code, text = data_reply(server, raw_post(folded_to(50_000)))
    assert (code, text) == (552, b"5.3.4 Message header too large (over 65536 bytes)")
    code, text = data_reply(server, raw_post(folded_to(2000)))  # 48 KB
    assert (code, text) == (552, b"5.3.4 Header field To too large (over 32768 bytes)")
    # Many small fields: the block as a whole is limited.
    many = "".join(f"X-Filler-{i}: {'f' * 60}\r\n" for i in range(1200))
    code, text = data_reply(server, raw_post("m@x.example", extra=many))
    assert (code, text) == (552, b"5.3.4 Message header too large (over 65536 bytes)")
    # A long but acceptable To is stored, counted cheaply and held for its many recipients;
    # the server goes on serving.
    code, _ = data_reply(server, raw_post(folded_to(1000), subject="many"))
    assert code == 250
    server.send("a@x.example", LIST, make_message("a@x.example", subject="after"))
    sink.wait_for(lambda got: any("[test] after" in r.raw.decode() for r in got))
    held = cli(server.config_path, "held", "list", "test")
    assert "many" in held.output and "big" not in held.output


def test_limits_are_configurable(start_server) -> None:
    server: RunningServer = start_server(
        lists=[list_table("test", posting="open")],
        server={"max_header_size": 2000, "max_header_field_size": 500},
    )
    code, text = data_reply(server, raw_post(folded_to(40)))
    assert (code, text) == (552, b"5.3.4 Header field To too large (over 500 bytes)")
    assert data_reply(server, raw_post("m@x.example"))[0] == 250


def test_a_post_without_message_id_or_date_gets_them_at_intake(start_server, sink: Sink) -> None:
    server = open_list(start_server)
    bare = f"From: a@x.example\r\nTo: {LIST}\r\nSubject: bare\r\n\r\nHello.\r\n".encode()
    assert data_reply(server, bare)[0] == 250
    (copy,) = sink.wait_for(lambda got: any("m@x.example" in r.rcpt_tos for r in got))
    message = copy.message
    assert str(message["Message-ID"]).endswith(f"@{DOMAIN}>")
    assert message["Date"].datetime is not None
    assert message["Subject"] == "[test] bare"


def test_postmaster_is_accepted_and_forwarded_to_the_site_owners(start_server, sink: Sink) -> None:
    server: RunningServer = start_server(
        lists=[
            list_table("one", owners=["o1@ngo.example"]),
            list_table("two", owners=["o2@ngo.example"], moderators=["mod@ngo.example"]),
            list_table("three", moderators=["o1@ngo.example"]),
        ]
    )
    for address in (f"postmaster@{DOMAIN}", f"PostMaster@{DOMAIN}"):
        message = make_message("someone@remote.example", address, subject=f"to {address}")
        assert server.send("someone@remote.example", address, message) == {}
    got = sink.wait_for(lambda got: len(got) == 2)
    for forward in got:
        assert sorted(forward.rcpt_tos) == ["o1@ngo.example", "o2@ngo.example"]
        assert forward.mail_from in ("", "<>")  # the null sender
        assert forward.message["X-BeenThere"] == f"postmaster@{DOMAIN}"


def test_postmaster_goes_where_the_operator_says(start_server, sink: Sink) -> None:
    server: RunningServer = start_server(
        lists=[list_table("one", owners=["o1@ngo.example"])],
        server={"postmaster": ["Admin@Hosting.example"]},
    )
    address = f"postmaster@{DOMAIN}"
    server.send("", address, make_message("mailer-daemon@remote.example", address))
    (forward,) = sink.wait_for(lambda got: len(got) == 1)
    assert forward.rcpt_tos == ["Admin@hosting.example".lower()]
    assert forward.message["Auto-Submitted"] == "auto-forwarded"


def nested(depth: int) -> bytes:
    """A post whose text sits *depth* multiparts deep."""
    opening = "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth)
    )
    closing = "".join(f"\r\n--b{i}--\r\n" for i in reversed(range(depth)))
    return (
        f"From: a@x.example\r\nTo: {LIST}\r\nSubject: deep {depth}\r\nMIME-Version: 1.0\r\n"
        f"{opening}Content-Type: text/plain\r\n\r\nHello.\r\n{closing}"
    ).encode()


def test_deep_mime_nesting_is_refused_before_the_250(
    start_server, sink: Sink, tmp_path: Path
) -> None:
    # Personalized sending: the path that once failed with RecursionError after the 250.
    server: RunningServer = start_server(
        lists=[list_table("test", posting="open")],
        web={"listen": "127.0.0.1:0", "base_url": "https://l.example", "secret_file": "web.key"},
    )
    assert cli(server.config_path, "members", "add", "test", "m@x.example").exit_code == 0
    assert data_reply(server, nested(300)) == (
        554,
        b"5.6.0 MIME parts nested too deep (over 50 levels)",
    )
    assert data_reply(server, nested(40))[0] == 250
    sink.wait_for(lambda got: any("[test] deep 40" in r.raw.decode() for r in got))


def test_lmtp_refuses_an_oversized_message_while_receiving_it(start_server) -> None:
    server: RunningServer = start_server(
        lists=[list_table("test", posting="open"), list_table("other", posting="open")],
        server={"protocol": "lmtp", "max_message_size": 200_000},
    )
    line = b"x" * 998 + b"\r\n"
    big = raw_post(LIST, subject="huge") + line * 30_000 + b".\r\n"  # 30 MB, made untraced
    tracemalloc.start()
    try:
        with smtplib.LMTP("127.0.0.1", server.port, timeout=60) as client:
            client.ehlo()
            client.mail("a@x.example")
            client.rcpt(LIST)
            client.rcpt(f"other@{DOMAIN}")
            client.putcmd("data")
            assert client.getreply()[0] == 354
            client.send(big)
            # One reply per recipient, as LMTP owes, and the session goes on.
            assert client.getreply() == (552, b"5.3.4 Message too big")
            assert client.getreply() == (552, b"5.3.4 Message too big")
            assert client.noop()[0] == 250
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000, f"{peak} bytes held while receiving"  # not the 30 MB


def test_smtp_sessions_beyond_max_connections_are_told_to_come_back(start_server) -> None:
    server: RunningServer = start_server(server={"max_connections": 2})
    first, second = server.smtp(), server.smtp()
    try:
        assert first.noop()[0] == 250 and second.noop()[0] == 250
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            server.smtp()
        assert refused.value.smtp_code == 421
        assert second.noop()[0] == 250  # the sessions under way are not disturbed
    finally:
        first.quit()
        second.close()
    # Once a session ends its place is free again (the server sees the close a moment later).
    deadline = time.monotonic() + 10
    while True:
        try:
            with server.smtp() as again:
                assert again.noop()[0] == 250
            break
        except smtplib.SMTPConnectError:
            assert time.monotonic() < deadline, "the freed place was never given back"


def test_a_multipart_without_its_boundary_and_8bit_text_is_delivered(
    start_server, sink: Sink
) -> None:
    """Found by fuzz/run.py: the email package could not write such a message back."""
    server = open_list(start_server)
    raw = (
        f"From: a@x.example\r\nTo: {LIST}\r\nSubject: broken\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\nПривет\r\n--b--\r\n'
    ).encode()
    assert data_reply(server, raw)[0] == 250
    (copy,) = sink.wait_for(lambda got: any("m@x.example" in r.rcpt_tos for r in got))
    assert "Привет".encode() in copy.raw


def test_an_attached_message_with_8bit_headers_reaches_the_plain_digest(
    start_server, sink: Sink
) -> None:
    """Found by fuzz/run.py: the plain digest's note on such an attachment raised."""
    server: RunningServer = start_server(
        lists=[list_table("test", posting="open", digest={"interval": 86400.0})]
    )
    for flags, address in (((), "m@x.example"), (("--plain",), "d@x.example")):
        added = cli(server.config_path, "members", "add", "--no-welcome", *flags, "test", address)
        assert added.exit_code == 0, added.output
    raw = (
        f"From: a@x.example\r\nTo: {LIST}\r\nSubject: forwarded\r\n"
        "Content-Type: message/rfc822\r\n\r\nMIME-Version: \xc2\x80\r\n"
        "Content-Type: text/plain; charset=x-unknown\r\n\r\n\xc2\x80\r\n"
    ).encode("latin-1")
    assert data_reply(server, raw)[0] == 250
    sink.wait_for(lambda got: any("m@x.example" in r.rcpt_tos for r in got))
    sent = cli(server.config_path, "digest", "send", "test")
    assert sent.exit_code == 0 and "Issue 1 (1 posts)" in sent.output, sent.output
    sink.wait_for(lambda got: any("d@x.example" in r.rcpt_tos for r in got))
    (digest,) = sink.messages_to("d@x.example")
    assert "[test] forwarded" in digest.message.get_content()
