"""The archive pages over real HTTP, from posts sent by SMTP through the real daemon, on
SQLite and PostgreSQL: what a visitor sees, what they may not see, and the security headers."""

from __future__ import annotations

import re
from base64 import b64encode
from email.message import EmailMessage
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select
from support import DOMAIN, RunningServer, list_table, make_message

from listserv.store.models import ArchivedMessage

PDF = b"%PDF-1.4 not really a pdf <script>alert(1)</script>"


def archived_count(server: RunningServer) -> int:
    with server.app.sessions() as session:
        return session.scalar(select(func.count()).select_from(ArchivedMessage)) or 0


def cp1251_post(message_id: str) -> bytes:
    body = (
        "Коллеги, отчёт об экологии озера готов: https://example.org/report?id=1&x=2\n"
        "\n"
        "> Алия писала: когда будет отчёт?\n"
        "> Ещё вопрос от aliya@private.example\n"
        "\n"
        "Ерлан\n"
    )
    head = (
        "From: =?utf-8?b?0JXRgNC70LDQvQ==?= <erlan@x.example>\r\n"
        f"To: test@{DOMAIN}\r\n"
        f"Subject: =?windows-1251?b?{b64encode('Отчёт'.encode('cp1251')).decode()}?=\r\n"
        f"Message-ID: <{message_id}>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=windows-1251\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return head.encode() + body.replace("\n", "\r\n").encode("cp1251")


def html_post_with_attachment(parent: str) -> EmailMessage:
    message = make_message(
        '"Алия Б." <aliya@y.example>', subject="Re: Отчёт", In_Reply_To=f"<{parent}>"
    )
    message.set_content("Спасибо!\n")
    message.add_alternative(
        '<p>Спасибо за <b>отчёт</b>!</p><script>alert("x")</script>'
        '<img src="https://tracker.example/pixel.gif">',
        subtype="html",
    )
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="отчёт 1.pdf")
    return message


@pytest.fixture
def portal(start_server) -> tuple[RunningServer, httpx.Client]:
    server = start_server(
        lists=[
            list_table("test", posting="open", archive="public", language="ru"),
            list_table("private", posting="open"),  # archive = "members" by default
            list_table("off", posting="open", archive="none"),
        ],
        web={"listen": "127.0.0.1:0"},
    )
    assert server.server.web is not None
    client = httpx.Client(base_url=f"http://127.0.0.1:{server.server.web.port}", timeout=10)
    yield server, client
    client.close()


def post_all(server: RunningServer) -> dict[str, str]:
    ids = {"first": "first.1@x.example", "weird": "a/b+c%d@y.example"}
    server.send("erlan@x.example", f"test@{DOMAIN}", cp1251_post(ids["first"]))
    reply = html_post_with_attachment(ids["first"])
    del reply["Message-ID"]
    reply["Message-ID"] = f"<{ids['weird']}>"
    server.send("aliya@y.example", f"test@{DOMAIN}", reply)
    secret = make_message("s@z.example", to=f"private@{DOMAIN}", subject="Отчёт секретный")
    server.send("s@z.example", f"private@{DOMAIN}", secret)
    ids["secret"] = secret["Message-ID"].strip("<>")
    server.send("s@z.example", f"off@{DOMAIN}", make_message("s@z.example", to=f"off@{DOMAIN}"))
    server.wait_for_state(lambda: archived_count(server) == 3, "three posts archived")
    return ids


def test_archive_pages_show_threads_and_posts_safely(portal) -> None:
    server, client = portal
    ids = post_all(server)
    index = client.get("/lists/test/archive/", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    assert index.status_code == 200
    assert index.headers["content-security-policy"].startswith("default-src 'self'")
    assert index.headers["x-content-type-options"] == "nosniff"
    assert "<script" not in index.text and "Архив" in index.text
    month = re.search(r'href="/lists/test/archive/(\d{4}-\d{2})/"', index.text).group(1)
    assert re.search(rf"{month}\.mbox", index.text) and "Писем: 2" in index.text

    threads = client.get(f"/lists/test/archive/{month}/", params={"lang": "en"})
    assert "Messages in thread: 2" in threads.text and "[test] Отчёт" in threads.text
    assert threads.cookies.get("lang") == "en"
    thread_link = re.search(r'href="(/lists/test/thread/\d+/)"', threads.text).group(1)
    by_date = client.get(f"/lists/test/archive/{month}/", params={"view": "date"})
    assert by_date.text.index("[test] Отчёт") < by_date.text.index("Re: Отчёт")
    assert "By date" in by_date.text  # the cookie set above keeps English

    thread = client.get(thread_link).text
    assert thread.index("экологии озера") < thread.index("Спасибо")  # reply after its parent
    assert '<details class="quote">' in thread and "&gt; Алия писала" in thread
    assert '<a href="https://example.org/report?id=1&amp;x=2" rel="nofollow noopener">' in thread
    for address in ("erlan@x.example", "aliya@y.example", "aliya@private.example"):
        assert address not in thread
    assert "Ерлан (e…@x….example)" in thread and "a…@p….example" in thread

    permalink = f"/lists/test/message/{quote(ids['weird'], safe='@+')}/"
    assert "%2F" in permalink
    page = client.get(permalink)
    assert page.status_code == 200 and "Спасибо!" in page.text  # the plain alternative
    assert "<script" not in page.text and "tracker.example" not in page.text
    assert 'href="/lists/test/message/first.1@x.example/"' in page.text  # in reply to
    link = re.search(r'href="([^"]+/attachment/1/[^"]+)"', page.text).group(1)
    download = client.get(link)
    assert download.content == PDF
    assert download.headers["content-disposition"].startswith("attachment;")
    assert "%D0%BE%D1%82%D1%87%D1%91%D1%82%201.pdf" in download.headers["content-disposition"]
    assert download.headers["x-content-type-options"] == "nosniff"
    assert client.get(permalink + "attachment/2/x.bin").status_code == 404

    raw = client.get(permalink + "raw")
    assert raw.headers["content-type"].startswith("text/plain")
    assert b"aliya@y.example" not in raw.content and b"a\xe2\x80\xa6@y\xe2\x80\xa6.example" in (
        raw.content
    )

    mbox = client.get(f"/lists/test/archive/{month}.mbox")
    assert mbox.status_code == 200 and mbox.content.startswith(b"From e")
    assert mbox.content.count(b"\nFrom ") == 1 and b"erlan@x.example" not in mbox.content

    feed = client.get("/lists/test/feed.atom")
    assert feed.headers["content-type"].startswith("application/atom+xml")
    assert feed.text.count("<entry>") == 2 and "&lt;pre" in feed.text


def test_archives_a_visitor_may_not_read_are_not_found(portal) -> None:
    server, client = portal
    ids = post_all(server)
    month = "2026-01"
    for name in ("private", "off", "nonexistent"):
        for path in (
            f"/lists/{name}/archive/",
            f"/lists/{name}/archive/{month}/",
            f"/lists/{name}/archive/{month}.mbox",
            f"/lists/{name}/feed.atom",
            f"/lists/{name}/message/{quote(ids['secret'])}/",
            f"/lists/{name}/message/{quote(ids['secret'])}/raw",
            f"/lists/{name}/thread/1/",
        ):
            answer = client.get(path, headers={"Accept-Language": "kk"})
            assert answer.status_code == 404, path
            assert "Бет табылмады" in answer.text
    assert client.get("/lists/test/archive/2026-13/").status_code == 404
    found = client.get("/search", params={"q": "отчёт"})
    assert "[private]" not in found.text and "секретный" not in found.text
    assert "Test list private" in client.get("/").text
    assert 'href="/lists/test/archive/"' in client.get("/lists/test/").text


def test_search_finds_word_forms_and_highlights_escaped(portal) -> None:
    server, client = portal
    post_all(server)
    found = client.get("/search", params={"q": "экология", "lang": "ru"})
    assert found.status_code == 200
    assert "Найдено: 1" in found.text and "<mark>экологии</mark>" in found.text
    assert "erlan@x.example" not in found.text
    only_test = client.get("/search", params={"q": "отчёты", "list": "test"}).text
    assert "Найдено: 2" in only_test
    by_sender = client.get("/search", params={"q": "отчёт", "from": "Алия"}).text
    assert "Найдено: 1" in by_sender and "Re: Отчёт" in by_sender
    assert "Найдено: 0" in client.get("/search", params={"q": "отчёт", "before": "2000-01-01"}).text
    hostile = client.get("/search", params={"q": '<script>alert("x")</script>'}).text
    assert "<script>alert" not in hostile and "&lt;script&gt;" in hostile
    assert client.get("/static/portal.css").headers["content-type"].startswith("text/css")


def test_html_only_and_koi8r_posts_render_decoded_and_sanitised(portal) -> None:
    server, client = portal
    html = make_message("h@x.example", subject="HTML")
    html.set_content(
        '<p onclick="steal()">Встреча <a href="javascript:alert(1)">здесь</a>'
        ' и <a href="https://example.org/map">карта</a></p>'
        '<style>p{}</style><img src="https://tracker.example/p.gif"><iframe src="x"></iframe>',
        subtype="html",
    )
    koi8 = (
        (
            f"From: k@x.example\r\nTo: test@{DOMAIN}\r\nSubject: koi8\r\n"
            "Message-ID: <koi8@x.example>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=koi8-r\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + b64encode("Привет из Алматы\n".encode("koi8-r"))
        + b"\r\n"
    )
    server.send("h@x.example", f"test@{DOMAIN}", html)
    server.send("k@x.example", f"test@{DOMAIN}", koi8)
    server.wait_for_state(lambda: archived_count(server) == 2, "two posts archived")

    page = client.get(f"/lists/test/message/{html['Message-ID'].strip('<>')}/").text
    assert "Встреча" in page and 'href="https://example.org/map"' in page
    for unsafe in ("onclick", "javascript:", "<style", "tracker.example", "<iframe"):
        assert unsafe not in page, unsafe
    assert "Привет из Алматы" in client.get("/lists/test/message/koi8@x.example/").text
    assert "Привет" in client.get("/search", params={"q": "алматы"}).text
