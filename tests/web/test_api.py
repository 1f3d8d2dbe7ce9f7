"""The REST API over real HTTP against the real server, with keys made by the real
``listserv api-key`` command: scopes, read-only keys, revocation, problems, pages, and the
same decisions and notices as by mail. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from support import DOMAIN, RunningServer, Sink, add, cli, list_table, make_message, members_of
from web_support import portal_web

from listserv.store.models import ApiKey, HeldMessage


@pytest.fixture
def server(start_server, tmp_path: Path) -> RunningServer:
    return start_server(
        lists=[
            list_table("test", posting="moderated", moderators=["mod@x.example"], archive="public"),
            list_table("other", posting="open"),
        ],
        web=portal_web(tmp_path),
    )


def make_key(server: RunningServer, *args: str) -> str:
    result = cli(server.config_path, "api-key", "create", *args)
    assert result.exit_code == 0, result.output
    return result.output.strip()


def api(server: RunningServer, key: str | None) -> httpx.Client:
    assert server.server.web is not None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(
        base_url=f"http://127.0.0.1:{server.server.web.port}/api/v1", headers=headers, timeout=15
    )


def is_problem(answer: httpx.Response, status: int) -> bool:
    return (
        answer.status_code == status
        and answer.headers["content-type"] == "application/problem+json"
        and answer.json()["status"] == status
    )


def test_api_keys_are_shown_once_stored_hashed_scoped_and_revocable(server: RunningServer) -> None:
    key = make_key(server, "site")
    scoped = make_key(server, "other-only", "--list", "other", "--read-only")
    assert key.startswith("lsk_") and len(key) > 40
    with server.app.sessions() as session:
        stored = {row.name: row for row in session.scalars(select(ApiKey))}
    assert key not in {row.digest for row in stored.values()}
    listed = json.loads(cli(server.config_path, "api-key", "list", "--json").output)
    assert [(k["name"], k["lists"], k["read_only"]) for k in listed] == [
        ("other-only", ["other"], True),
        ("site", [], False),
    ]
    assert key not in cli(server.config_path, "api-key", "list").output
    duplicate = cli(server.config_path, "api-key", "create", "site")
    assert duplicate.exit_code == 1 and "exists already" in duplicate.output
    unknown_list = cli(server.config_path, "api-key", "create", "x", "--list", "nope")
    assert unknown_list.exit_code == 1 and "no list named 'nope'" in unknown_list.output

    with api(server, None) as anonymous:
        answer = anonymous.get("/lists")
        assert is_problem(answer, 401) and answer.headers["www-authenticate"] == "Bearer"
    with api(server, "lsk_wrong") as wrong:
        assert is_problem(wrong.get("/lists"), 401)
    with api(server, scoped) as limited:
        assert [item["name"] for item in limited.get("/lists").json()["items"]] == ["other"]
        assert is_problem(limited.get("/lists/test"), 404)
        assert is_problem(limited.get("/lists/test/members"), 404)
        refused = limited.post("/lists/other/members", json={"address": "a@x.example"})
        assert is_problem(refused, 403)
        assert members_of(server.config_path, "other") == {}
    with api(server, key) as client:
        assert client.get("/lists/test").json()["posting"] == "moderated"
        assert cli(server.config_path, "api-key", "revoke", "site").exit_code == 0
        assert is_problem(client.get("/lists/test"), 401)


def test_members_through_the_api(server: RunningServer, sink: Sink) -> None:
    add(server, *(f"m{n:03}@x.example" for n in range(120)))
    with api(server, make_key(server, "site")) as client:
        seen: list[str] = []
        cursor = ""
        pages = 0
        while True:
            page = client.get("/lists/test/members", params={"limit": 50, "cursor": cursor}).json()
            seen += [m["address"] for m in page["items"]]
            pages += 1
            if page["next"] is None:
                break
            cursor = page["next"]
        assert pages == 3 and seen == sorted(seen) and len(set(seen)) == 120

        added = client.post(
            "/lists/test/members", json={"address": "New@Z.example", "delivery": "digest"}
        )
        assert added.status_code == 201 and added.json()["address"] == "new@z.example"
        assert is_problem(
            client.post("/lists/test/members", json={"address": "new@z.example"}), 409
        )
        assert is_problem(client.post("/lists/test/members", json={"address": "nope"}), 422)
        assert is_problem(client.post("/lists/test/members", content=b"{"), 400)
        welcome = sink.wait_for_recipients({"new@z.example"})
        assert welcome[0].message["X-Listserv-Notice"] == "welcome"

        changed = client.patch("/lists/test/members/m001@x.example", json={"delivery": "nomail"})
        assert changed.json()["delivery"] == "nomail"
        assert client.delete("/lists/test/members/m002@x.example").status_code == 204
        assert is_problem(client.delete("/lists/test/members/m002@x.example"), 404)
        roster = members_of(server.config_path, "test")
        assert roster["m001@x.example"]["delivery"] == "nomail" and "m002@x.example" not in roster
        assert is_problem(client.put("/lists/test/members"), 405)
        assert is_problem(client.get("/no/such/route"), 404)
        assert client.get("/queue").json().keys() >= {"queued", "failed", "inbox"}


def test_held_posts_and_archives_through_the_api(server: RunningServer, sink: Sink) -> None:
    add(server, "ana@x.example", "bob@y.example")
    server.send(
        "ana@x.example", f"test@{DOMAIN}", make_message("ana@x.example", subject="Flood report")
    )
    with api(server, make_key(server, "site")) as client:
        held = server.wait_for_state(lambda: client.get("/lists/test/held").json()["items"])
        assert held[0]["subject"] == "Flood report" and held[0]["reason"]
        bad = client.post(f"/lists/test/held/{held[0]['id']}", json={"action": "publish"})
        assert is_problem(bad, 422)
        decided = client.post(f"/lists/test/held/{held[0]['id']}", json={"action": "approve"})
        assert decided.status_code == 200 and "approved" in decided.json()["result"]
        again = client.post(f"/lists/test/held/{held[0]['id']}", json={"action": "discard"})
        assert is_problem(again, 409)
        sink.wait_for_recipients({"bob@y.example"})
        with server.app.sessions() as session:
            row = session.scalars(select(HeldMessage)).one()
            assert (row.decided_by, row.decided_via) == ("API key site", "api")

        posts = server.wait_for_state(lambda: client.get("/lists/test/archive").json()["items"])
        assert posts[0]["subject"] == "[test] Flood report"
        assert "ana@x.example" not in json.dumps(posts)
        one = client.get(f"/lists/test/archive/{posts[0]['id']}").json()
        assert "Hello, list." in one["text"]
        found = client.get("/search", params={"q": "flood"}).json()["items"]
        assert [p["id"] for p in found] == [posts[0]["id"]]
        # "other" keeps a members-only archive: not for a key that is not scoped to it.
        assert is_problem(client.get("/lists/other/archive"), 404)

        document = client.get("/openapi.json").json()
        assert document["openapi"].startswith("3.1")
        assert {
            "/lists",
            "/lists/{name}/members",
            "/lists/{name}/held/{id}",
            "/search",
            "/queue",
        } <= set(document["paths"])
