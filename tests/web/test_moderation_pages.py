"""Held posts and the roster in the browser, over real HTTP against the real server: the same
decisions and notices as by mail, recorded as made on the web, and 404 for anyone without
the right. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select
from support import DOMAIN, RunningServer, Sink, add, list_table, make_message, members_of
from web_support import browsing, portal_web

from listserv.store.models import HeldMessage


@pytest.fixture
def server(start_server, tmp_path: Path) -> RunningServer:
    return start_server(
        lists=[
            list_table(
                "test",
                posting="moderated",
                moderators=["mod@x.example", "mod-b@x.example"],
                owners=["owner@x.example"],
            ),
            list_table("other", moderators=["mod2@x.example"]),
        ],
        web=portal_web(tmp_path, admins=["admin@x.example"]),
    )


def held_rows(server: RunningServer) -> list[HeldMessage]:
    with server.app.sessions() as session:
        return list(session.scalars(select(HeldMessage).order_by(HeldMessage.id)))


def hold_two(server: RunningServer) -> list[int]:
    body = "Hello <b>all</b>\n<script>alert(1)</script>\n"
    for subject in ("First news", "Second news"):
        message = make_message("ana@x.example", subject=subject, body=body)
        server.send("ana@x.example", f"test@{DOMAIN}", message)
    rows = server.wait_for_state(lambda: len(held_rows(server)) == 2 and held_rows(server))
    return [row.id for row in rows]


def test_moderator_decides_held_posts_in_the_browser(server: RunningServer, sink: Sink) -> None:
    add(server, "ana@x.example", "bob@y.example")
    first, second = hold_two(server)
    with browsing(server) as browser:
        browser.sign_in(sink, "mod@x.example")
        listing = browser.get("/lists/test/held/")
        assert listing.status_code == 200
        assert "First news" in listing.text and "Second news" in listing.text
        assert "Why it was held: every post to this list is moderated" in listing.text
        russian = browser.get("/lists/test/held/?lang=ru").text
        assert "Причина: все письма в эту рассылку проходят модерацию" in russian
        browser.get("/lists/test/held/?lang=en")  # the language is remembered: back to English
        post = browser.get(f"/lists/test/held/{first}")
        assert "Hello &lt;b&gt;all&lt;/b&gt;" in post.text and "<script>" not in post.text
        for path in (f"/lists/test/held/{first}", "/lists/test/members/add"):
            assert browser.client.head(path).status_code in (200, 405)
        assert held_rows(server)[0].status == "pending"

        page = f"/lists/test/held/{first}"
        approved = browser.submit(page, {"action": "approve"}, page=page)
        assert approved.status_code == 303
        got = sink.wait_for_recipients({"bob@y.example"})
        assert any(
            "First news" in m.message["Subject"] for m in got if "bob@y.example" in m.rcpt_tos
        )
        page = f"/lists/test/held/{second}"
        reason = "Please post this on the other list"
        browser.submit(page, {"action": "reject", "reason": reason}, page=page)
        rejected = sink.wait_for(
            lambda _: any(
                reason in m.message.get_content()
                for m in sink.messages_to("ana@x.example")
                if m.message["X-Listserv-Notice"] == "held_rejected"
            )
        )
        assert rejected
        rows = held_rows(server)
        assert [(r.status, r.decided_by, r.decided_via) for r in rows] == [
            ("approved", "mod@x.example", "web"),
            ("rejected", "mod@x.example", "web"),
        ]
        assert rows[1].decision_reason == reason
        again = browser.submit(page, {"action": "approve"}, page="/me")
        assert again.status_code == 409 and "already decided" in again.text
        # The other moderators are told, as after a decision by mail.
        sink.wait_for(
            lambda _: any(
                m.message["X-Listserv-Notice"] == "held_decided"
                for m in sink.messages_to("mod-b@x.example")
            )
        )


def test_approve_always_accepts_the_sender_from_then_on(server: RunningServer, sink: Sink) -> None:
    add(server, "bob@y.example")
    first, _ = hold_two(server)
    with browsing(server) as browser:
        browser.sign_in(sink, "admin@x.example")  # [web] admins moderate every list
        page = f"/lists/test/held/{first}"
        browser.submit(page, {"action": "approve-always"}, page=page)
        sink.wait_for_recipients({"bob@y.example"})
        server.send(
            "ana@x.example", f"test@{DOMAIN}", make_message("ana@x.example", subject="Third")
        )
        sink.wait_for(
            lambda got: any(
                "Third" in m.message["Subject"] for m in got if "bob@y.example" in m.rcpt_tos
            )
        )
        assert len(held_rows(server)) == 2


def test_pages_of_moderators_are_404_for_everyone_else(server: RunningServer, sink: Sink) -> None:
    add(server, "ana@x.example")
    first, _ = hold_two(server)
    paths = ["/lists/test/held/", f"/lists/test/held/{first}", "/lists/test/members/"]
    with browsing(server) as browser:
        for path in paths:
            assert browser.get(path).status_code == 404
        browser.sign_in(sink, "ana@x.example")
        for path in paths:
            assert browser.get(path).status_code == 404
        forbidden = browser.submit(f"/lists/test/held/{first}", {"action": "approve"}, page="/me")
        assert forbidden.status_code == 404
    with browsing(server) as browser:
        browser.sign_in(sink, "mod2@x.example")  # a moderator of another list
        assert browser.get("/lists/test/held/").status_code == 404
        assert browser.get("/lists/other/held/").status_code == 200
    assert [r.status for r in held_rows(server)] == ["pending", "pending"]


def test_owner_manages_the_roster(server: RunningServer, sink: Sink) -> None:
    add(server, *(f"m{n:02}@x.example" for n in range(55)))
    with browsing(server) as browser:
        browser.sign_in(sink, "owner@x.example")
        first = browser.get("/lists/test/members/").text
        assert "m00@x.example" in first and "m49@x.example" in first
        assert "m50@x.example" not in first
        following = (
            re.search(r'href="(\?q=&amp;after=[^"]+)"', first).group(1).replace("&amp;", "&")
        )
        second = browser.get("/lists/test/members/" + following).text
        assert "m50@x.example" in second and "m49@x.example" not in second
        found = browser.get("/lists/test/members/", params={"q": "M1"}).text
        assert "m10@x.example" in found and "m20@x.example" not in found

        page = "/lists/test/members/"
        browser.submit(page + "add", {"address": "new@z.example", "delivery": "digest"}, page=page)
        browser.submit(page + "remove", {"address": "m00@x.example"}, page=page)
        browser.submit(
            page + "delivery", {"address": "m01@x.example", "delivery": "nomail"}, page=page
        )
        roster = members_of(server.config_path, "test")
        assert roster["new@z.example"]["delivery"] == "digest" and "m00@x.example" not in roster
        assert roster["m01@x.example"]["delivery"] == "nomail"
        welcome = sink.wait_for_recipients({"new@z.example"})
        assert any(m.message["X-Listserv-Notice"] == "welcome" for m in welcome)
        for action in ("add", "remove", "delivery"):
            assert browser.get(page + action).status_code == 405
