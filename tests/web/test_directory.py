"""The directory, a list's page and subscribing from it, over real HTTP against the real
server; the confirmation mail is the one the sink received. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support import (
    DOMAIN,
    RunningServer,
    Sink,
    add,
    list_table,
    make_message,
    members_of,
    token_in,
)
from web_support import browsing, portal_web

TOKEN = re.compile(r"confirm ([a-z0-9]{20,})")


@pytest.fixture
def server(start_server, tmp_path: Path) -> RunningServer:
    def network_list(name: str, region: str, topic: str, **settings: object) -> dict:
        return list_table(name, region=region, topic=topic, **settings)

    return start_server(
        lists=[
            network_list("env-ca", "Central Asia", "Environment and Sustainable Development"),
            network_list("env-kz", "Kazakhstan", "Environment and Sustainable Development"),
            network_list("gender-kz", "Kazakhstan", "Gender Equality and Women's Rights"),
            network_list("dis-uz", "Uzbekistan", "Rights of People with Disabilities"),
            list_table("test", description="A <b>test</b> list", posting="moderated"),
            list_table("hidden", advertised=False, region="Kazakhstan"),
        ],
        web=portal_web(tmp_path),
    )


def test_directory_groups_lists_by_region_and_topic_in_the_visitors_language(server) -> None:
    with browsing(server) as browser:
        english = browser.get("/", headers={"Accept-Language": "en"}).text
        regions = re.findall(r"<h2 id=\"region-\d+\">([^<]+)</h2>", english)
        assert regions == ["Kazakhstan", "Uzbekistan", "Central Asia", "Other lists"]
        assert english.index("Environment and Sustainable") < english.index("Gender Equality")
        assert "/lists/hidden/" not in english and 'href="/lists/test/"' in english

        russian = browser.get("/", params={"lang": "ru"}).text
        assert '<h2 id="region-1">Казахстан</h2>' in russian
        assert "Окружающая среда и устойчивое развитие" in russian and "Центральная Азия" in russian
        kazakh = browser.get("/", params={"lang": "kk"}).text
        assert "Қазақстан" in kazakh and "Гендерлік теңдік" in kazakh

        page = browser.get("/lists/env-kz/", params={"lang": "en"})
        assert page.status_code == 200
        assert "Region</dt><dd>Kazakhstan" in page.text and "Read the archive" in page.text
        assert f"env-kz@{DOMAIN}" in page.text
        escaped = browser.get("/lists/test/").text
        assert "A &lt;b&gt;test&lt;/b&gt; list" in escaped
        assert "each post checked by a moderator" in escaped
        assert browser.get("/lists/nope/").status_code == 404


def test_subscribe_on_the_web_then_confirm_by_link(server: RunningServer, sink: Sink) -> None:
    add(server, "member@x.example")
    with browsing(server) as browser:
        page = "/lists/test/"
        new = browser.submit("/lists/test/subscribe", {"address": "New@Y.example"}, page=page)
        old = browser.submit("/lists/test/subscribe", {"address": "member@x.example"}, page=page)
        assert new.status_code == old.status_code == 200
        assert "confirmation message is on its way" in new.text
        assert new.text.replace("New@Y.example", "") == old.text.replace("member@x.example", "")
        sink.wait_for_recipients({"new@y.example", "member@x.example"})
        mail = sink.messages_to("new@y.example")[0].message
        assert mail["Reply-To"].startswith("test-confirm+")
        token = token_in(str(mail["Subject"]))

        for _ in range(2):  # GET and HEAD show the pending change and change nothing
            assert browser.client.head(f"/confirm/{token}").status_code == 200
            shown = browser.get(f"/confirm/{token}")
            assert "Subscribe new@y.example to Test list test" in shown.text
        assert "new@y.example" not in members_of(server.config_path, "test")
        assert browser.client.post(f"/confirm/{token}").status_code == 403

        done = browser.submit(f"/confirm/{token}", page=f"/confirm/{token}")
        assert done.status_code == 200 and "the address is subscribed" in done.text
        assert "new@y.example" in members_of(server.config_path, "test")
        welcome = sink.wait_for(lambda _: len(sink.messages_to("new@y.example")) >= 2)
        assert any(m.message["X-Listserv-Notice"] == "welcome" for m in welcome)
        again = browser.submit(f"/confirm/{token}", page="/lists/test/")
        assert again.status_code == 410

        bad = browser.submit("/lists/test/subscribe", {"address": "not an address"}, page=page)
        assert bad.status_code == 400 and "not an e-mail address" in bad.text
        for path in ("/lists/test/subscribe", "/lists/nope/subscribe"):
            assert browser.get(path).status_code in (404, 405)
            assert browser.client.head(path).status_code in (404, 405)


def test_subscription_requests_are_rate_limited_per_client(server: RunningServer) -> None:
    with browsing(server) as browser:
        token = browser.csrf("/lists/test/")
        for n in range(20):
            answer = browser.client.post(
                "/lists/test/subscribe", data={"address": f"s{n}@y.example", "csrf": token}
            )
            assert answer.status_code == 200
        refused = browser.client.post(
            "/lists/test/subscribe", data={"address": "last@y.example", "csrf": token}
        )
        assert refused.status_code == 429


def test_confirmation_mail_links_to_the_portal_when_it_has_an_address(start_server, sink, tmp_path):
    server = start_server(
        lists=[list_table("test", language="ru")],
        web=portal_web(tmp_path, base_url="https://lists.example.org/portal"),
    )
    server.send(
        "new@y.example",
        f"test-join@{DOMAIN}",
        make_message("new@y.example", to=f"test-join@{DOMAIN}"),
    )
    mail = sink.wait_for_recipients({"new@y.example"})[0].message
    token = token_in(str(mail["Subject"]))
    text = mail.get_content()
    assert f"    https://lists.example.org/portal/confirm/{token}\r\n" in text
    assert "Или откройте эту страницу" in text
    with browsing(server) as browser:
        assert "new@y.example" in browser.get(f"/confirm/{token}").text
