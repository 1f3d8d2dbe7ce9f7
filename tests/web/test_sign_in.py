"""Signing in by mail link opens members-only archives: sessions, CSRF, single-use links
that go out through the outbound queue (real daemon, real sink, both databases)."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import func, select
from support import DOMAIN, cli, list_table, make_message

from listserv.store.models import ArchivedMessage


def csrf_of(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def test_a_member_signs_in_by_mail_link_and_reads_the_members_archive(start_server, sink) -> None:
    server = start_server(
        lists=[list_table("private", language="ru")], web={"listen": "127.0.0.1:0"}
    )
    assert server.server.web is not None
    base = f"http://127.0.0.1:{server.server.web.port}"
    added = cli(server.config_path, "members", "add", "private", "--no-welcome", "m@x.example")
    assert added.exit_code == 0, added.output
    post = make_message("Мира <m@x.example>", to=f"private@{DOMAIN}", subject="Только для своих")
    server.send("m@x.example", f"private@{DOMAIN}", post)

    def archived() -> bool:
        with server.app.sessions() as session:
            return session.scalar(select(func.count()).select_from(ArchivedMessage)) == 1

    server.wait_for_state(archived, "the post archived")
    sink.wait_for_recipients({"m@x.example"})
    sink.clear()
    client = httpx.Client(base_url=base, timeout=10, headers={"Accept-Language": "ru"})
    archive = "/lists/private/archive/"
    assert client.get(archive).status_code == 404

    assert client.post("/login", data={"address": "m@x.example"}).status_code == 403
    form = client.get("/login")
    cookie = form.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert "secure" not in cookie.lower()  # base_url is not https
    csrf = csrf_of(form)
    stranger = client.post("/login", data={"address": "nobody@z.example", "csrf": csrf})
    member = client.post("/login", data={"address": "M@X.example", "csrf": csrf})
    assert stranger.status_code == member.status_code == 200
    assert stranger.text == member.text and "ссылка для входа" in member.text
    (mail,) = sink.wait_for_recipients({"m@x.example"})
    assert sink.messages_to("nobody@z.example") == []
    assert mail.mail_from == f"private-bounces@{DOMAIN}"
    assert mail.message["Subject"] == "Ссылка для входа на страницы рассылок"
    link = re.search(rf"{re.escape(base)}(/login/[a-z0-9]+)", mail.message.get_content()).group(1)

    confirm = client.get(link)  # what a link scanner does: nothing
    assert confirm.status_code == 200 and "Войти как m@x.example" in confirm.text
    assert client.get(archive).status_code == 404
    assert client.post(link, data={"csrf": "forged"}).status_code == 403
    signed_in = client.post(link, data={"csrf": csrf_of(confirm)})
    assert signed_in.status_code == 303 and signed_in.headers["location"] == archive
    page = client.get(archive)
    assert page.status_code == 200 and "Вы вошли как m@x.example" in page.text
    assert page.headers["cache-control"] == "private, no-store"
    message = client.get(f"/lists/private/message/{post['Message-ID'].strip('<>')}/")
    assert "Мира &lt;m@x.example&gt;" in message.text  # members see addresses

    other = httpx.Client(base_url=base, timeout=10)
    other_csrf = csrf_of(other.get("/login"))
    assert other.post(link, data={"csrf": other_csrf}).status_code == 404  # used up
    assert other.get(archive).status_code == 404

    client.post("/logout", data={"csrf": csrf_of(page)})
    assert client.get(archive).status_code == 404


def test_the_session_cookie_is_secure_behind_https(start_server, tmp_path) -> None:
    server = start_server(
        web={
            "listen": "127.0.0.1:0",
            "base_url": "https://lists.example.org",
            "secret_file": str(tmp_path / "web.secret"),
        }
    )
    assert server.server.web is not None
    page = httpx.get(f"http://127.0.0.1:{server.server.web.port}/login", timeout=10)
    assert "; secure" in page.headers["set-cookie"].lower()


def test_sign_in_requests_are_limited_per_client(start_server) -> None:
    server = start_server(web={"listen": "127.0.0.1:0"})
    assert server.server.web is not None
    client = httpx.Client(base_url=f"http://127.0.0.1:{server.server.web.port}", timeout=10)
    csrf = csrf_of(client.get("/login"))
    answers = [
        client.post("/login", data={"address": f"x{i}@z.example", "csrf": csrf}).status_code
        for i in range(11)
    ]
    assert answers == [200] * 10 + [429]
