"""Intake over real SMTP and LMTP: what is refused at RCPT and DATA, limits, timeouts, an
unavailable database, malformed mail — and the server keeps serving through all of it."""

from __future__ import annotations

import smtplib
import socket
import sqlite3
import threading
from collections.abc import Callable
from contextlib import closing, suppress
from email.policy import SMTP

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from support import DOMAIN, RunningServer, Sink, cli, list_table, make_message, write_config

from listserv.store.models import InboxMessage

LIST = f"test@{DOMAIN}"


def member_server(start_server, **sections: dict) -> RunningServer:
    server: RunningServer = start_server(lists=[list_table("test", posting="open")], **sections)
    result = cli(server.config_path, "members", "add", "--no-welcome", "test", "m@x.example")
    assert result.exit_code == 0, result.output
    return server


def send_marker(server: RunningServer, sink: Sink, subject: str = "marker") -> None:
    """Send a post that produces mail and wait for it: everything sent before was handled."""
    server.send("a@x.example", LIST, make_message("a@x.example", subject=subject))
    sink.wait_for(lambda rs: any(f"[test] {subject}" in r.raw.decode("latin-1") for r in rs))


FOREIGN = [
    f"nosuchlist@{DOMAIN}",
    f"test-admin@{DOMAIN}",
    f"test+x@{DOMAIN}",
    "test@other.example.org",
    "victim@gmail.com",
    "victim@[127.0.0.1]",
    f"victim%gmail.com@{DOMAIN}",
    f"@{DOMAIN}:victim@gmail.com",
]


def test_foreign_and_unknown_recipients_are_refused(start_server) -> None:
    server: RunningServer = start_server()
    with server.smtp() as client:
        client.ehlo()
        assert client.mail("a@x.example")[0] == 250
        for rcpt in FOREIGN:
            # 553 is aiosmtpd refusing a source route before we see it.
            assert client.rcpt(rcpt)[0] in (550, 553), rcpt
        assert client.rcpt(LIST)[0] == 250


def test_relay_attempt_is_never_delivered(start_server, sink: Sink) -> None:
    server = member_server(start_server)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        server.send("a@x.example", ["victim@gmail.com"], make_message(to="victim@gmail.com"))
    assert refused.value.recipients["victim@gmail.com"][0] == 550
    refused_some = server.send(
        "a@x.example", ["victim@gmail.com", LIST], make_message(subject="mixed")
    )
    assert refused_some["victim@gmail.com"][0] == 550
    send_marker(server, sink)
    assert sink.messages_to("victim@gmail.com") == []


def test_oversize_message_is_refused_at_data(start_server, sink: Sink) -> None:
    server = member_server(start_server, server={"max_message_size": 4000})
    big = make_message(body=("y" * 70 + "\n") * 100)
    with server.smtp() as client:
        client.ehlo()
        assert "SIZE 4000" in client.ehlo_resp.decode()
        # A client that announces the size is refused at MAIL…
        assert client.mail("a@x.example", ["SIZE=9000"])[0] == 552
        # …one that does not, at the end of DATA.
        assert client.mail("a@x.example")[0] == 250
        assert client.rcpt(LIST)[0] == 250
        assert client.data(big.as_bytes(policy=SMTP))[0] == 552
    send_marker(server, sink)
    with server.app.sessions() as session:
        assert len(session.scalars(select(InboxMessage.id)).all()) == 1


def test_recipients_per_transaction_are_limited(start_server) -> None:
    server: RunningServer = start_server(
        lists=[list_table(name) for name in ("a", "b", "c", "d")], server={"max_recipients": 3}
    )
    with server.smtp() as client:
        client.ehlo()
        client.mail("x@x.example")
        codes = [client.rcpt(f"{name}@{DOMAIN}")[0] for name in ("a", "b", "c", "d")]
    assert codes == [250, 250, 250, 452]


def test_overlong_line_is_refused(start_server, sink: Sink) -> None:
    server = member_server(start_server)
    raw = b"From: a@x.example\r\nSubject: long\r\n\r\n" + b"x" * 5000 + b"\r\n"
    with pytest.raises(smtplib.SMTPDataError) as error, server.smtp() as client:
        client.sendmail("a@x.example", [LIST], raw)
    assert error.value.smtp_code == 500
    send_marker(server, sink)
    assert not any(b"Subject: [test] long" in r.raw for r in sink.received)


def test_idle_connection_is_closed(start_server) -> None:
    server: RunningServer = start_server(server={"idle_timeout": 0.3})
    with closing(socket.create_connection(("127.0.0.1", server.port), timeout=10)) as s:
        assert s.recv(1024).startswith(b"220")
        s.sendall(b"EHLO client.example\r\n")
        data = b""
        while chunk := s.recv(1024):  # returns b"" once the server hangs up
            data += chunk
    assert b"250" in data


def lmtp_transaction(
    port: int, recipients: list[str], raw: bytes, before_data: Callable[[], None] = lambda: None
) -> tuple[list, list]:
    """One LMTP transaction: the RCPT reply codes and the DATA replies, one per recipient
    accepted (smtplib.LMTP reads only the first of them)."""
    client = smtplib.LMTP("127.0.0.1", port)
    try:
        assert client.ehlo_or_helo_if_needed() is None
        assert client.mail("a@x.example")[0] == 250
        codes = [client.rcpt(rcpt)[0] for rcpt in recipients]
        before_data()
        assert client.docmd("DATA")[0] == 354
        client.send(raw + b".\r\n")
        return codes, [client.getreply() for code in codes if code == 250]
    finally:
        client.close()


def test_lmtp_answers_once_per_recipient(start_server, sink: Sink) -> None:
    server: RunningServer = start_server(
        lists=[list_table("test", posting="open"), list_table("other", posting="open")],
        server={"protocol": "lmtp", "max_message_size": 4000},
    )
    assert (
        cli(server.config_path, "members", "add", "--no-welcome", "test", "m@x.example").exit_code
        == 0
    )
    assert (
        cli(server.config_path, "members", "add", "--no-welcome", "other", "o@x.example").exit_code
        == 0
    )
    recipients = [LIST, f"nosuch@{DOMAIN}", f"other@{DOMAIN}"]
    big = make_message(subject="too big", body=("y" * 70 + "\n") * 100).as_bytes(policy=SMTP)
    codes, replies = lmtp_transaction(server.port, recipients, big)
    assert codes == [250, 550, 250]
    assert [code for code, _ in replies] == [552, 552]
    post = make_message(subject="lmtp").as_bytes(policy=SMTP)
    codes, replies = lmtp_transaction(server.port, recipients, post)
    assert [code for code, _ in replies] == [250, 250]
    assert LIST.encode() in replies[0][1] and f"other@{DOMAIN}".encode() in replies[1][1]
    got = sink.wait_for_recipients({"m@x.example", "o@x.example"})
    assert {str(r.message["Subject"]) for r in got} == {"[test] lmtp", "[other] lmtp"}


def test_duplicate_recipients_get_one_copy(start_server, sink: Sink) -> None:
    server = member_server(start_server)
    server.send("a@x.example", [LIST, LIST.upper(), LIST], make_message(subject="once"))
    send_marker(server, sink)
    with server.app.sessions() as session:
        assert len(session.scalars(select(InboxMessage.id)).all()) == 2
    got = sink.wait_for(lambda rs: any(b"[test] once" in r.raw for r in rs))
    assert sum(b"[test] once" in r.raw for r in got) == 1


class Proxy:
    """A TCP forwarder the test can cut, to take a real PostgreSQL away from the server."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut = False
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut:
                client.close()
                continue
            upstream = socket.create_connection(self.upstream)
            self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for s in (source, target):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def sever(self) -> None:
        self.cut = True
        for s in self.open:
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.open.clear()

    def restore(self) -> None:
        self.cut = False

    def close(self) -> None:
        self.sever()
        self.listener.close()


class DatabaseOutage:
    """Makes the server's database unable to take a write, then gives it back: a lock held
    on the SQLite file, or the network to PostgreSQL cut."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.proxy: Proxy | None = None
        self.lock: sqlite3.Connection | None = None
        if not database_url.startswith("sqlite"):
            url = make_url(database_url)
            self.proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
            self.url = url.set(host="127.0.0.1", port=self.proxy.port).render_as_string(
                hide_password=False
            )

    def begin(self) -> None:
        if self.proxy is not None:
            self.proxy.sever()
            return
        self.lock = sqlite3.connect(self.url.split("///", 1)[1], isolation_level=None)
        self.lock.execute("BEGIN EXCLUSIVE")

    def end(self) -> None:
        if self.proxy is not None:
            self.proxy.restore()
        elif self.lock is not None:
            self.lock.rollback()
            self.lock.close()
            self.lock = None


@pytest.fixture
def outage(database_url: str):  # type: ignore[no-untyped-def]
    outage = DatabaseOutage(database_url)
    yield outage
    outage.end()
    if outage.proxy is not None:
        outage.proxy.close()


@pytest.mark.parametrize("protocol", ["smtp", "lmtp"])
def test_unavailable_database_at_data_answers_451(
    tmp_path, outage: DatabaseOutage, sink: Sink, protocol: str
) -> None:
    path = write_config(
        tmp_path,
        outage.url,
        sink,
        [list_table("test", posting="open"), list_table("other", posting="open")],
        database={"timeout": 0.5},
        server={"protocol": protocol},
    )
    server = RunningServer(path).start()
    try:
        assert cli(path, "members", "add", "--no-welcome", "test", "m@x.example").exit_code == 0
        during = make_message(subject="during outage").as_bytes(policy=SMTP)
        if protocol == "lmtp":
            codes, replies = lmtp_transaction(
                server.port, [LIST, f"other@{DOMAIN}"], during, before_data=outage.begin
            )
            assert codes == [250, 250]
            assert [code for code, _ in replies] == [451, 451]
        else:
            with server.smtp() as client:
                client.ehlo()
                assert client.mail("a@x.example")[0] == 250
                assert client.rcpt(LIST)[0] == 250
                outage.begin()
                assert client.data(during)[0] == 451
        outage.end()
        after = make_message(subject="after outage").as_bytes(policy=SMTP)
        if protocol == "lmtp":
            assert [code for code, _ in lmtp_transaction(server.port, [LIST], after)[1]] == [250]
        else:
            server.send("a@x.example", LIST, after)
        got = sink.wait_for_recipients({"m@x.example"})
        assert [str(r.message["Subject"]) for r in got] == ["[test] after outage"]
    finally:
        server.stop()


MALFORMED = [
    b"",
    b"\r\n",
    b"Subject: no from\r\n\r\nbody\r\n",
    b"garbage line without a colon\r\n\x00\x01\x02 more garbage\r\n\r\nbody\r\n",
    bytes(range(1, 256)).replace(b"\r", b"").replace(b"\n", b"") * 3 + b"\r\n",
    b"From: \r\nSubject: =?bogus?Q?=ZZ?=\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n",
    b"From: <>\r\nContent-Type: text/plain; charset=x-no-such\r\nContent-Transfer-Encoding: "
    b"base64\r\n\r\n!!!!\r\n",
    b"From: a@x.example\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n"
    b"Content-Type: message/rfc822\r\n\r\n\r\n",
    b"From: " + b"a" * 900 + b"@x.example\r\nTo: " + b"b@y.example, " * 60 + b"\r\n\r\nx\r\n",
]


def test_malformed_mail_never_stops_the_router(start_server, sink: Sink) -> None:
    server = member_server(start_server)
    for raw in MALFORMED:
        with server.smtp() as client:
            client.ehlo()
            client.mail("a@x.example")
            client.rcpt(LIST)
            code, _ = client.data(raw)
            assert code in (250, 500), raw
    send_marker(server, sink)
    with server.app.sessions() as session:
        rows = session.execute(select(InboxMessage.status, InboxMessage.outcome)).all()
    assert len(rows) == len(MALFORMED) + 1
    # Everything was processed: an open list distributes even an odd message (or holds it by
    # a safety rule, like the one with 60 recipients).
    assert {status for status, _ in rows} == {"done"}
    assert all(outcome in ("distributed", "held: recipients") for _, outcome in rows)
