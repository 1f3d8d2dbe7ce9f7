"""GET and HEAD never change anything: every URL the portal's forms POST to, asked with GET
and HEAD by a signed-in admin (who may do everything), leaves members, held posts, tokens and
sign-in links as they were. SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from support import DOMAIN, RunningServer, Sink, add, list_table, make_message, token_in
from web_support import browsing, portal_web, sign_in_tokens

from listserv.store.models import HeldMessage, Member, SignInLink, Token, WebSession


def state(server: RunningServer) -> tuple:
    with server.app.sessions() as session:
        return (
            sorted((m.address, m.delivery) for m in session.scalars(select(Member))),
            [(h.id, h.status) for h in session.scalars(select(HeldMessage))],
            sorted((t.action, t.used_at is None) for t in session.scalars(select(Token))),
            sorted(s.used_at is None for s in session.scalars(select(SignInLink))),
            len(session.scalars(select(WebSession)).all()),
        )


def test_get_and_head_change_nothing(start_server, sink: Sink, tmp_path: Path) -> None:
    server = start_server(
        lists=[list_table("test", posting="moderated")],
        web=portal_web(tmp_path, admins=["admin@x.example"]),
    )
    add(server, "ana@x.example")
    server.send("ana@x.example", f"test@{DOMAIN}", make_message("ana@x.example"))
    with browsing(server) as browser:
        browser.sign_in(sink, "admin@x.example")
        held = server.wait_for_state(lambda: state(server)[1])
        browser.submit("/lists/test/subscribe", {"address": "new@y.example"}, page="/lists/test/")
        mail = sink.wait_for_recipients({"new@y.example"})[-1].message
        confirm = token_in(str(mail["Subject"]))
        browser.submit("/login", {"address": "admin@x.example"}, page="/me")
        sink.wait_for(lambda _: len(sign_in_tokens(sink, "admin@x.example")) == 2)
        link = sign_in_tokens(sink, "admin@x.example")[-1]
        before = state(server)
        actions = [
            "/lists/test/subscribe",
            f"/confirm/{confirm}",
            "/login",
            f"/login/{link}",
            "/logout",
            "/me/lists/test/delivery",
            "/me/lists/test/unsubscribe",
            "/me/unsubscribe-all",
            f"/lists/test/held/{held[0][0]}",
            "/lists/test/members/add",
            "/lists/test/members/remove",
            "/lists/test/members/delivery",
        ]
        query = "?address=ana@x.example&action=approve&delivery=nomail"
        for path in actions:
            for method in ("GET", "HEAD"):
                answer = browser.client.request(method, path + query)
                assert answer.status_code in (200, 303, 405), (method, path, answer.status_code)
        assert state(server) == before
        assert "admin@x.example" in browser.get("/me").text  # still signed in
