"""Posting policy basics over the real server: who is distributed, held, rejected (with a
notice in the list's language) or silently dropped."""

from __future__ import annotations

from sqlalchemy import select
from support import DOMAIN, Received, RunningServer, Sink, cli, list_table, make_message

from listserv.store.models import HeldMessage, InboxMessage, ReceivedBody

MEMBER = "m@x.example"
STRANGER = "stranger@z.example"
OWNER = "owner@ngo.example.kz"
MODERATOR = "moderator@ngo.example.kz"
LISTS = [
    list_table("open", posting="open"),
    list_table("hold", nonmember_action="hold"),
    list_table("reject", nonmember_action="reject", language="ru"),
    list_table("otkaz", nonmember_action="reject", language="kk"),
    list_table("discard", nonmember_action="discard"),
    list_table("news", posting="announce", owners=[OWNER], moderators=[MODERATOR]),
]


def start(start_server) -> RunningServer:
    server: RunningServer = start_server(lists=LISTS)
    for entry in LISTS:
        result = cli(server.config_path, "members", "add", "--no-welcome", entry["name"], MEMBER)
        assert result.exit_code == 0, result.output
    return server


def post(server: RunningServer, sender: str, name: str, subject: str) -> None:
    server.send(sender, f"{name}@{DOMAIN}", make_message(sender, f"{name}@{DOMAIN}", subject))


def outcomes(server: RunningServer) -> dict[str, str]:
    with server.app.sessions() as session:
        rows = session.execute(
            select(ReceivedBody.raw, InboxMessage.outcome).join(InboxMessage.body)
        ).all()
    return {raw.split(b"Subject: ")[1].split(b"\r\n")[0].decode(): outcome for raw, outcome in rows}


def posts_to(received: list[Received], address: str) -> list[Received]:
    """List posts (not the server's own notices) that reached *address*."""
    return [r for r in received if address in r.rcpt_tos and r.message["X-Listserv-Notice"] is None]


def test_posting_policies(start_server, sink: Sink) -> None:
    server = start(start_server)
    post(server, STRANGER, "open", "open from stranger")
    post(server, STRANGER, "hold", "hold from stranger")
    post(server, STRANGER, "discard", "discard from stranger")
    post(server, MEMBER, "news", "news from member")
    post(server, STRANGER, "news", "news from stranger")
    post(server, MODERATOR, "news", "news from moderator")
    post(server, OWNER, "news", "news from owner")
    post(server, MEMBER, "hold", "hold from member")
    sink.wait_for(lambda rs: len(posts_to(rs, MEMBER)) == 4)
    subjects = {str(r.message["Subject"]) for r in posts_to(sink.received, MEMBER)}
    assert subjects == {
        "[open] open from stranger",
        "[news] news from moderator",
        "[news] news from owner",
        "[hold] hold from member",
    }
    assert outcomes(server) == {
        "open from stranger": "distributed",
        "hold from stranger": "held: nonmember",
        "discard from stranger": "discarded: nonmember",
        "news from member": "held: announce-only",
        "news from stranger": "held: announce-only",
        "news from moderator": "distributed",
        "news from owner": "distributed",
        "hold from member": "distributed",
    }
    with server.app.sessions() as session:
        held = session.scalars(select(HeldMessage).order_by(HeldMessage.id)).all()
        assert [(h.sender, h.subject, h.rule, h.status) for h in held] == [
            (STRANGER, "hold from stranger", "nonmember", "pending"),
            (MEMBER, "news from member", "announce-only", "pending"),
            (STRANGER, "news from stranger", "announce-only", "pending"),
        ]
    # No post reached the stranger; what it gets is at most the notices that its posts wait
    # for a moderator (none for the discarded one).
    notices = [r.message for r in sink.messages_to(STRANGER)]
    assert posts_to(sink.received, STRANGER) == []
    assert {m["X-Listserv-Notice"] for m in notices} <= {"held_notice"}


def test_rejected_post_gets_a_notice_in_the_lists_language(start_server, sink: Sink) -> None:
    server = start(start_server)
    post(server, STRANGER, "reject", "Отчёт о заповеднике")
    post(server, STRANGER, "otkaz", "Есеп")
    robot = make_message("mailer-daemon@z.example", f"reject@{DOMAIN}", "robot")
    server.send("", f"reject@{DOMAIN}", robot)
    got = sink.wait_for(lambda rs: len([r for r in rs if STRANGER in r.rcpt_tos]) == 2)
    notices = {r.message["Content-Language"]: r for r in got if STRANGER in r.rcpt_tos}
    russian = notices["ru"]
    assert russian.mail_from == f"reject-bounces@{DOMAIN}"
    message = russian.message
    assert str(message["Subject"]) == f"Ваше письмо в reject@{DOMAIN} не принято"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["List-Id"] == f'"Test list reject" <reject.{DOMAIN}>'
    assert message["List-Post"] is None
    assert message["From"] == f"reject-owner@{DOMAIN}"
    body = message.get_content()
    assert "Тема:  «Отчёт о заповеднике»" in body
    assert f"могут только её подписчики,\r\n    а адрес {STRANGER} на неё не подписан" in body
    assert "not" not in body
    kazakh = notices["kk"].message
    assert str(kazakh["Subject"]) == f"otkaz@{DOMAIN} таратылымына жіберген хатыңыз қабылданбады"
    assert "тек оның жазылушылары ғана хат жібере алады" in kazakh.get_content()
    post(server, MEMBER, "open", "marker")
    sink.wait_for_recipients({MEMBER})
    assert outcomes(server)["robot"] == "rejected: nonmember"
    assert len(sink.messages_to(STRANGER)) == 2
    assert sink.messages_to("mailer-daemon@z.example") == []
