"""Posts through the real server: list headers, subjects, bodies in every charset, IDN members,
loops — sent over SMTP, received by the sink, decoded as a member's client would."""

from __future__ import annotations

import base64
import json
from email.message import EmailMessage

from samples import SIGNED, assert_list_headers, signed_entity
from sqlalchemy import select
from support import DOMAIN, Received, RunningServer, Sink, cli, list_table, make_message

from listserv.store.models import InboxMessage, Member

MEMBERS = ["a@x.example", "b@y.example"]
RUSSIAN = "Привет, коллеги!\nОтчёт о заповеднике: ёлки, Ёж, ЪЬ.\n"
RUSSIAN_CRLF = RUSSIAN.replace("\n", "\r\n")


def start_with_members(start_server, *lists: dict, members: list[str] = MEMBERS) -> RunningServer:
    server: RunningServer = start_server(lists=list(lists) or [list_table("test")])
    for entry in lists or [list_table("test")]:
        result = cli(server.config_path, "members", "add", "--no-welcome", entry["name"], *members)
        assert result.exit_code == 0, result.output
    return server


def by_subject(sink: Sink, count: int) -> dict[str, Received]:
    """Wait for *count* distinct posts at a@x.example; returns them by decoded Subject."""
    got = sink.wait_for(lambda rs: len({r.raw for r in rs if "a@x.example" in r.rcpt_tos}) >= count)
    return {str(r.message["Subject"]): r for r in got if "a@x.example" in r.rcpt_tos}


def text(part: EmailMessage) -> str:
    return part.get_content().replace("\r\n", "\n")


def test_every_list_header_on_a_post(start_server, sink: Sink) -> None:
    server = start_with_members(start_server, list_table("test", reply_to="list"))
    message = make_message("a@x.example", subject="Hello")
    message["Reply-To"] = "a-private@x.example"
    message["Precedence"] = "bulk"
    server.send("a@x.example", f"test@{DOMAIN}", message)
    got = sink.wait_for_recipients(set(MEMBERS))
    assert {r for m in got for r in m.rcpt_tos} == set(MEMBERS)
    for received in got:
        post = received.message
        assert received.mail_from == f"test-bounces@{DOMAIN}"
        assert_list_headers(post, "test", "Test list test")
        assert post.get_all("Reply-To") == [f"test@{DOMAIN}"]
        assert post["Subject"] == "[test] Hello"
        assert post["From"] == "a@x.example"
        assert post["Message-ID"] == message["Message-ID"]


def test_announce_list_and_reply_to_poster(start_server, sink: Sink) -> None:
    news = list_table("news", posting="announce", owners=["boss@ngo.example.kz"])
    server = start_with_members(start_server, news)
    message = make_message("Boss@NGO.example.kz", subject="News")
    message["Reply-To"] = "press@ngo.example.kz"
    server.send("boss@ngo.example.kz", f"news@{DOMAIN}", message)
    post = sink.wait_for_recipients(set(MEMBERS))[0].message
    assert post["List-Post"] == "NO"
    assert post["List-Id"] == f'"Test list news" <news.{DOMAIN}>'
    assert post["Reply-To"] == "press@ngo.example.kz"


def encoded(text: str, charset: str, encoding: str) -> str:
    data = text.encode(charset)
    if encoding == "B":
        return f"=?{charset}?B?{base64.b64encode(data).decode()}?="
    return f"=?{charset}?Q?{''.join(f'={b:02X}' for b in data)}?="


def test_subjects_get_the_prefix_once(start_server, sink: Sink) -> None:
    server = start_with_members(start_server)
    subjects = {
        "Re: [test] plain": "[test] Re: plain",
        "RE: Re: [test] twice": "[test] Re: twice",
        "AW: [test] german": "[test] Re: german",
        "Fwd: forwarded": "[test] Fwd: forwarded",
        encoded("Ответ: [test] Привет utf8", "utf-8", "B"): "[test] Re: Привет utf8",
        encoded("Ответ: [test] Привет koi8", "koi8-r", "B"): "[test] Re: Привет koi8",
        encoded("Re: [test] Привет 1251", "windows-1251", "Q"): "[test] Re: Привет 1251",
        encoded("Привет\r\nBcc: victim@example.com", "utf-8", "B"): (
            "[test] Привет Bcc: victim@example.com"
        ),
    }
    for subject in subjects:
        raw = (
            f"From: a@x.example\r\nTo: test@{DOMAIN}\r\nSubject: {subject}\r\n\r\nbody\r\n"
        ).encode()
        server.send("a@x.example", f"test@{DOMAIN}", raw)
    got = by_subject(sink, len(subjects))
    assert set(got) == set(subjects.values())
    for received in got.values():
        assert received.message["Bcc"] is None
        assert sink.messages_to("victim@example.com") == []


def mime_post(charset: str, cte: str) -> EmailMessage:
    message = make_message("a@x.example", subject=f"{charset} {cte}")
    message.set_content(RUSSIAN, charset=charset, cte=cte)
    return message


def test_bodies_arrive_unharmed(start_server, sink: Sink) -> None:
    server = start_with_members(start_server, list_table("test", language="ru"))
    sent: dict[str, EmailMessage] = {}
    for charset in ("utf-8", "koi8-r", "windows-1251"):
        for cte in ("8bit", "quoted-printable", "base64"):
            message = mime_post(charset, cte)
            sent[f"[test] {charset} {cte}"] = message
            server.send("a@x.example", f"test@{DOMAIN}", message)

    mixed = make_message("a@x.example", subject="mixed", body=RUSSIAN)
    pdf = bytes(range(256)) * 64
    mixed.add_attachment(pdf, maintype="application", subtype="pdf", filename="отчёт.pdf")
    alternative = make_message("a@x.example", subject="alternative", body=RUSSIAN)
    alternative.add_alternative("<p>Привет, коллеги!</p>", subtype="html")
    no_mime_utf8 = b"From: a@x.example\r\nSubject: no mime utf8\r\n\r\n" + RUSSIAN_CRLF.encode()
    no_mime_1251 = b"From: a@x.example\r\nSubject: no mime 1251\r\n\r\n" + RUSSIAN_CRLF.encode(
        "cp1251"
    )
    for message in (mixed, alternative, SIGNED, no_mime_utf8, no_mime_1251):
        server.send("a@x.example", f"test@{DOMAIN}", message)

    got = by_subject(sink, len(sent) + 5)
    for subject, original in sent.items():
        received = got[subject].message
        assert received.get_content_charset() == original.get_content_charset()
        assert received["Content-Transfer-Encoding"] == original["Content-Transfer-Encoding"]
        body = text(received)
        assert body.startswith(RUSSIAN + "\n")
        assert "Написать в рассылку: test@lists.example.org" in body

    body, attachment, footer = got["[test] mixed"].message.iter_parts()
    assert text(body) == RUSSIAN
    assert attachment.get_content() == pdf
    assert attachment.get_filename() == "отчёт.pdf"
    assert "Отписаться" in text(footer)

    inner, footer = got["[test] alternative"].message.iter_parts()
    plain, html = inner.iter_parts()
    assert text(plain) == RUSSIAN
    assert "Привет, коллеги!" in html.get_content()
    assert "Отписаться" in text(footer)

    signed = got["[test] signed"]
    assert signed_entity(signed.raw) == signed_entity(SIGNED)
    assert signed.message.get_content_type() == "multipart/mixed"

    assert text(got["[test] no mime utf8"].message).startswith(RUSSIAN + "\n")
    received_1251 = got["[test] no mime 1251"]
    assert RUSSIAN_CRLF.encode("cp1251") in received_1251.raw
    unlabelled, footer = received_1251.message.iter_parts()
    assert unlabelled.get_payload(decode=True).decode("cp1251").replace("\r\n", "\n") == RUSSIAN
    assert "Отписаться" in text(footer)


def test_members_at_idn_domains_get_a_label_addresses(start_server, sink: Sink) -> None:
    server: RunningServer = start_server()
    result = cli(
        server.config_path,
        "members",
        "add",
        "--no-welcome",
        "test",
        "user@мысал.қаз",
        "Ivan@Почта.РФ",
    )
    assert result.exit_code == 0, result.output
    a_labels = {"user@xn--80awbu3c.xn--80ao21a", "ivan@xn--80a1acny.xn--p1ai"}
    listed = cli(server.config_path, "members", "list", "test", "--json")
    assert {m["address"] for m in json.loads(listed.output)} == a_labels
    with server.app.sessions() as session:
        assert set(session.scalars(select(Member.address))) == a_labels
    # A member writing From: with the U-label form of the domain is still a member.
    message = make_message("Пользователь <user@мысал.қаз>", subject="idn")
    server.send("user@xn--80awbu3c.xn--80ao21a", f"test@{DOMAIN}", message)
    got = sink.wait_for_recipients(a_labels)
    assert {r for m in got for r in m.rcpt_tos} == a_labels
    assert got[0].message["Subject"] == "[test] idn"


def test_a_message_that_already_went_through_the_list_is_dropped(start_server, sink: Sink) -> None:
    server = start_with_members(start_server, list_table("test", posting="open"))
    looped = make_message("a@x.example", subject="looped", X_BeenThere=f"test@{DOMAIN}")
    looped_by_id = make_message("a@x.example", subject="looped by id")
    looped_by_id["List-Id"] = f"Test <test.{DOMAIN}>"
    other_list = make_message("a@x.example", subject="from another list")
    other_list["List-Id"] = f"<other.{DOMAIN}>"
    for message in (looped, looped_by_id, other_list):
        server.send("a@x.example", f"test@{DOMAIN}", message)
    got = by_subject(sink, 1)
    assert set(got) == {"[test] from another list"}
    with server.app.sessions() as session:
        outcomes = list(session.scalars(select(InboxMessage.outcome).order_by(InboxMessage.id)))
    assert outcomes == ["discarded: loop", "discarded: loop", "distributed"]
