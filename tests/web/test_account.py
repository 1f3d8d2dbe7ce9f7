"""Signing in by mail, sessions and a member's own settings, over real HTTP against the real
server, with the sign-in link read from the mail the sink received; SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from support import RunningServer, Sink, add, list_table, members_of
from web_support import Browser, browsing, portal_web, sign_in_token

from listserv.store.models import SignInLink, WebSession, utcnow


@pytest.fixture
def server(start_server, tmp_path: Path) -> RunningServer:
    return start_server(
        lists=[
            list_table("test", moderators=["mod@x.example"]),
            list_table("other", language="ru"),
        ],
        web=portal_web(tmp_path),
    )


def links_issued(server: RunningServer) -> int:
    with server.app.sessions() as session:
        return session.scalar(select(func.count()).select_from(SignInLink)) or 0


def test_sign_in_by_mail_then_manage_subscriptions(server: RunningServer, sink: Sink) -> None:
    add(server, "ana@x.example")
    with browsing(server) as browser:
        assert browser.get("/me", follow_redirects=False).headers["location"] == "/login"
        # A stranger's address gets the same answer as a member's, and no mail.
        stranger = browser.submit("/login", {"address": "nobody@y.example"})
        answer = browser.submit("/login", {"address": "ANA@x.example"})
        assert stranger.status_code == answer.status_code == 200
        assert stranger.text == answer.text and "link is on its way" in answer.text
        sink.wait_for_recipients({"ana@x.example"})
        assert sink.messages_to("nobody@y.example") == []
        mail = sink.messages_to("ana@x.example")[0]
        assert mail.message["Subject"] == "Sign in to the mailing lists"
        token = sign_in_token(sink, "ana@x.example")

        # GET and HEAD of the link change nothing; POST signs in, once.
        for _ in range(2):
            assert browser.client.head(f"/login/{token}").status_code == 200
            assert "ana@x.example" in browser.get(f"/login/{token}").text
        signed_in = browser.submit(f"/login/{token}", page=f"/login/{token}")
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/me"
        cookie = signed_in.headers["set-cookie"]
        assert cookie.startswith("session=") and "HttpOnly" in cookie
        assert "SameSite=Lax" in cookie and "Secure" not in cookie
        again = Browser(server)
        reused = again.submit(f"/login/{token}", page="/login")
        assert reused.status_code == 410 and "not valid" in reused.text
        again.close()

        me = browser.get("/me").text
        assert "Signed in as <strong>ana@x.example</strong>" in me
        assert 'href="/lists/test/"' in me and "/lists/other/" not in me

        changed = browser.submit("/me/lists/test/delivery", {"delivery": "digest"}, page="/me")
        assert changed.status_code == 303
        assert members_of(server.config_path, "test")["ana@x.example"]["delivery"] == "digest"
        told = sink.wait_for(lambda _: len(sink.messages_to("ana@x.example")) >= 2)
        assert any("delivery" in m.message["X-Listserv-Notice"] for m in told[1:])

        browser.submit("/me/lists/test/unsubscribe", page="/me")
        assert "ana@x.example" not in members_of(server.config_path, "test")
        assert "not on any list" in browser.get("/me").text

        browser.submit("/logout", page="/me")
        assert browser.get("/me", follow_redirects=False).status_code == 303


def test_forms_need_a_csrf_token_and_gets_change_nothing(server: RunningServer) -> None:
    add(server, "ana@x.example")
    with browsing(server) as browser:
        forged = browser.client.post("/login", data={"address": "ana@x.example"})
        assert forged.status_code == 403 and "expired" in forged.text
        assert links_issued(server) == 0
        wrong = browser.client.post("/login", data={"address": "ana@x.example", "csrf": "0" * 64})
        assert wrong.status_code == 403
        for path in ("/logout", "/me/unsubscribe-all", "/me/lists/test/unsubscribe"):
            assert browser.get(path).status_code == 405
            assert browser.client.head(path).status_code == 405
            assert browser.client.post(path).status_code == 403
        assert "ana@x.example" in members_of(server.config_path, "test")
        assert links_issued(server) == 0


def test_sign_in_requests_are_rate_limited(server: RunningServer, sink: Sink) -> None:
    add(server, "ana@x.example")
    with browsing(server) as browser:
        token = browser.csrf()
        answers = [
            browser.client.post("/login", data={"address": "ana@x.example", "csrf": token})
            for _ in range(7)
        ]
        assert {a.status_code for a in answers} == {200}  # the same answer, past the limit too
        assert links_issued(server) == 5
        for n in range(13):
            browser.client.post("/login", data={"address": f"p{n}@y.example", "csrf": token})
        refused = browser.client.post("/login", data={"address": "z@y.example", "csrf": token})
        assert refused.status_code == 429 and "Too many" in refused.text


def test_secure_cookie_when_the_portal_is_seen_over_https(start_server, sink: Sink, tmp_path):
    server = start_server(
        lists=[list_table("test")],
        web=portal_web(tmp_path, base_url="https://lists.example.org"),
    )
    add(server, "ana@x.example")
    with browsing(server) as browser:
        first = browser.get("/login")
        anchor = first.headers["set-cookie"]
        assert anchor.startswith("csrf=") and "Secure" in anchor and "HttpOnly" in anchor
        # The test talks plain HTTP to the endpoint behind the (absent) TLS proxy: hand the
        # Secure cookie back as a browser on https would.
        browser.client.cookies.set("csrf", anchor.split(";")[0].split("=", 1)[1])
        browser.submit("/login", {"address": "ana@x.example"})
        sink.wait_for_recipients({"ana@x.example"})
        text = sink.messages_to("ana@x.example")[0].message.get_content()
        assert "https://lists.example.org/login/" in text
        token = sign_in_token(sink, "ana@x.example")
        answer = browser.submit(f"/login/{token}", page=f"/login/{token}")
        assert "Secure" in answer.headers["set-cookie"]
        assert "HttpOnly" in answer.headers["set-cookie"]


def test_members_only_archive_opens_to_a_signed_in_member(server: RunningServer, sink: Sink):
    add(server, "ana@x.example")  # "test" keeps the default archive = "members"
    with browsing(server) as browser:
        assert browser.get("/lists/test/archive/").status_code == 404
        browser.sign_in(sink, "ana@x.example")
        assert browser.get("/lists/test/archive/").status_code == 200
    with browsing(server) as stranger:
        # A moderator of "test" is no member of "other", whose archive stays closed.
        stranger.sign_in(sink, "mod@x.example")
        assert stranger.get("/lists/test/archive/").status_code == 200
        assert stranger.get("/lists/other/archive/").status_code == 404


def test_expired_links_and_sessions_sign_nobody_in(server: RunningServer, sink: Sink) -> None:
    add(server, "ana@x.example")
    with browsing(server) as browser:
        browser.submit("/login", {"address": "ana@x.example"})
        sink.wait_for_recipients({"ana@x.example"})
        token = sign_in_token(sink, "ana@x.example")
        past = utcnow() - timedelta(seconds=1)
        with server.app.sessions.begin() as session:
            session.execute(update(SignInLink).values(expires_at=past))
        expired = browser.submit(f"/login/{token}", page="/login")
        assert expired.status_code == 410 and "session" not in expired.headers.get("set-cookie", "")

        browser.sign_in(sink, "ana@x.example")
        assert "ana@x.example" in browser.get("/me").text
        with server.app.sessions.begin() as session:
            session.execute(update(WebSession).values(expires_at=past))
        assert browser.get("/me", follow_redirects=False).headers["location"] == "/login"
