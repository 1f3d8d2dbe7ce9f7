"""Hostile posts over a real socket: header values that try to write into the server's own
mail, and posts that must still be held, sent or refused whatever they carry."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from support import DOMAIN, RunningServer, Sink, cli, list_table

MOD = "mod@ngo.example"
MEMBER = "member@x.example"
STRANGER = "stranger@z.example"
LIST = f"test@{DOMAIN}"


def encoded(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def raw_post(sender: str, subject: str, extra: str = "") -> bytes:
    return (
        f"From: {sender}\r\nTo: {LIST}\r\nSubject: {subject}\r\n"
        f"Message-ID: <hostile.{abs(hash(subject))}@z.example>\r\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        f"{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Hello.\r\n"
    ).encode()


def start(start_server, **settings: object) -> RunningServer:
    server: RunningServer = start_server(lists=[list_table("test", moderators=[MOD], **settings)])
    assert cli(server.config_path, "members", "add", "test", MEMBER).exit_code == 0
    return server


def test_encoded_newlines_in_a_subject_stay_inside_the_subject(start_server, sink: Sink) -> None:
    server = start(start_server)
    injected = [
        "x\r\n\r\nATTACKER: please approve, it is safe",
        "y\r\nBcc: victim@else.example",
        "z\nSubject: replaced",
    ]
    for subject in injected:
        server.send(STRANGER, LIST, raw_post(STRANGER, encoded(subject)))
    requests = sink.wait_for(
        lambda got: len([r for r in got if MOD in r.rcpt_tos]) == len(injected)
    )
    for request in (r for r in requests if MOD in r.rcpt_tos):
        message = request.message
        assert message["X-Listserv-Notice"] == "moderation_request"
        assert message["Bcc"] is None and len(message.get_all("Subject")) == 1
        subject = str(message["Subject"]).strip()
        assert subject.startswith(f"test: post from {STRANGER} needs a decision: ")
        assert "\n" not in subject and subject != "replaced"
        body = message.get_body(("plain",)).get_content()
        assert body.startswith(f"A message to {LIST} is waiting for moderation"), body[:200]
    assert all("victim@else.example" not in r.rcpt_tos for r in sink.received)


def test_a_notice_that_cannot_be_written_never_drops_the_held_post(
    start_server, sink: Sink, tmp_path: Path
) -> None:
    broken = tmp_path / "custom" / "en" / "moderation_request.txt"
    broken.parent.mkdir(parents=True)
    broken.write_text("Subject: {{ held.subject }}\nBcc: nobody\n\nbody\n", encoding="utf-8")
    server: RunningServer = start_server(
        lists=[list_table("test", moderators=[MOD])], server={"template_dir": "custom"}
    )
    server.send(STRANGER, LIST, raw_post(STRANGER, "please hold me"))
    (told,) = sink.wait_for(lambda got: any(STRANGER in r.rcpt_tos for r in got))
    assert told.message["X-Listserv-Notice"] == "held_notice"
    held = cli(server.config_path, "held", "list", "--json")
    assert held.exit_code == 0, held.output
    assert [(h["sender"], h["subject"]) for h in json.loads(held.output)] == [
        (STRANGER, "please hold me")
    ]
    assert not sink.messages_to(MOD)
