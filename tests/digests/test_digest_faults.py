"""One post the digest builders cannot take does not stop a list's digests: it is set aside
and named in the log, and the issue goes out without it. Mail nested deeper than the
builders can walk is refused at intake. Real server, real sink, both databases."""

from __future__ import annotations

import logging
import smtplib

import pytest
from sqlalchemy import func, select
from support import DOMAIN, RunningServer, Sink, cli, list_table, make_message

from listserv.intake.limits import MAX_MIME_DEPTH
from listserv.store.models import DigestEntry, MailingList

LIST = f"test@{DOMAIN}"
REGULAR, DIGEST = "reg@x.example", "dig@x.example"


def nested(levels: int, subject: str = "Deep") -> bytes:
    """A post whose text sits inside *levels* nested multipart/mixed parts."""
    head = (
        f"From: {REGULAR}\r\nTo: {LIST}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.lower()}@x.example>\r\nMIME-Version: 1.0\r\n"
    ).encode()
    opening = b"".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode()
        for i in range(levels)
    )
    closing = b"".join(f"\r\n--b{i}--".encode() for i in reversed(range(levels)))
    return head + opening + b"Content-Type: text/plain\r\n\r\nhello" + closing + b"\r\n"


def start(start_server) -> RunningServer:
    server: RunningServer = start_server(lists=[list_table("test", digest={"interval": 86400.0})])
    for address, flags in ((REGULAR, []), (DIGEST, ["--digest"])):
        result = cli(server.config_path, "members", "add", "--no-welcome", "test", address, *flags)
        assert result.exit_code == 0, result.output
    return server


def test_mail_nested_too_deeply_is_refused_at_data(start_server, sink: Sink) -> None:
    server = start(start_server)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        server.send(REGULAR, LIST, nested(200))
    assert refused.value.smtp_code == 554
    assert b"nested too deep (over 50 levels)" in refused.value.smtp_error
    server.send(REGULAR, LIST, nested(MAX_MIME_DEPTH - 1, "Nested but fine"))
    sink.wait_for(lambda got: any(m.message["Subject"] == "[test] Nested but fine" for m in got))


def test_a_post_the_digest_cannot_take_is_set_aside(
    start_server, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    server = start(start_server)
    # Accepted before intake refused such mail: it waits for the next issue.
    with server.app.sessions.begin() as session:
        list_id = session.scalar(select(MailingList.id).where(MailingList.name == "test"))
        raw = nested(200)
        session.add(DigestEntry(list_id=list_id, raw=raw, size=len(raw)))
    server.send(REGULAR, LIST, make_message(REGULAR, LIST, subject="Readable"))
    sink.wait_for(lambda got: any(REGULAR in m.rcpt_tos for m in got))

    with caplog.at_level(logging.ERROR):
        result = cli(server.config_path, "digest", "send", "test")
    assert result.exit_code == 0, result.output
    sink.wait_for(lambda got: any(DIGEST in m.rcpt_tos for m in got))
    (issue,) = sink.messages_to(DIGEST)
    assert issue.rcpt_tos == [DIGEST]
    assert b"[test] Readable" in issue.raw and b"<deep@x.example>" not in issue.raw
    assert "post <deep@x.example> (message None) set aside" in caplog.text
    with server.app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(DigestEntry)) == 0
