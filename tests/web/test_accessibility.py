"""Every portal page in real headless Chromium, checked by axe-core (injected into the page):
no serious or critical violations, at a phone's width (360 px) and on a desktop. Chromium and
chromedriver come from the system (``.ci/run`` installs them), axe-core from npm into
tests/web/a11y/ (``npm install --prefix tests/web/a11y``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import chromium as chromium_driver
from browser_support import skip_unless_browser
from month_support import month_mbox
from selenium.webdriver.common.by import By
from support import DOMAIN, RunningServer, Sink, add, cli, list_table, make_message, token_in
from web_support import browsing, portal_web

AXE = Path(__file__).parent / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ["violations"]})
  .then(result => done(result.violations.map(v => [v.id, v.impact, v.nodes.length, v.help])))
  .catch(error => done([["axe-error", "critical", 0, String(error)]]));
"""


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[object]:
    skip_unless_browser()
    if not AXE.exists() and not os.environ.get("CI"):
        pytest.skip("needs axe-core (npm install --prefix tests/web/a11y)")
    assert AXE.exists(), "CI must install axe-core (npm install --prefix tests/web/a11y)"
    with chromium_driver(tmp_path / "chromium") as driver:
        yield driver


@pytest.fixture
def server(start_server, tmp_path: Path) -> RunningServer:
    return start_server(
        lists=[
            list_table(
                "test",
                region="Kazakhstan",
                topic="Environment and Sustainable Development",
                description="Экологические НКО Казахстана",
                posting="moderated",
                moderators=["mod@x.example"],
                archive="public",
                language="ru",
            ),
        ],
        web=portal_web(tmp_path),
    )


# LISTSERV_SCREENSHOTS=DIR keeps a picture of the pages the README shows (docs/screenshots).
SCREENSHOTS = os.environ.get("LISTSERV_SCREENSHOTS", "")
PICTURED = {
    (1280, "/"): "directory",
    (360, "/"): "directory-phone",
    (1280, "/lists/test/"): "list",
    (1280, "/me"): "me",
    (1280, "/lists/test/held/"): "held",
    (1280, "/lists/test/members/"): "roster",
    (1280, "/search?q=озеро"): "search",
}


def picture(driver, width: int, path: str) -> None:
    name = PICTURED.get((width, path))
    if SCREENSHOTS and name:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(Path(SCREENSHOTS) / f"{name}.png"))


def serious(driver, url: str) -> list[list]:
    driver.get(url)
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    violations = driver.execute_async_script(RUN_AXE)
    return [v for v in violations if v[1] in ("serious", "critical")]


def test_every_page_passes_axe_in_chromium(server: RunningServer, sink: Sink, chromium) -> None:
    add(server, "ana@x.example")
    post = make_message("ana@x.example", to=f"test@{DOMAIN}", subject="Отчёт об озере")
    server.send("ana@x.example", f"test@{DOMAIN}", post)
    with browsing(server) as browser:
        browser.sign_in(sink, "mod@x.example")
        held = browser.get("/lists/test/held/").text
        held_id = held.split('href="/lists/test/held/')[1].split('"')[0]
        base = str(browser.client.base_url).rstrip("/")
        browser.submit("/lists/test/subscribe", {"address": "new@y.example"}, page="/lists/test/")
        confirm = token_in(str(sink.wait_for_recipients({"new@y.example"})[-1].message["Subject"]))
        browser.submit("/login", {"address": "ana@x.example"}, page="/me")
        session = browser.client.cookies["session"]
    anonymous = [
        "/",
        "/?lang=kk",
        "/?lang=ru",
        "/lists/test/",
        "/login",
        f"/confirm/{confirm}",
        "/nope",
    ]
    signed_in = ["/me", "/lists/test/held/", f"/lists/test/held/{held_id}"]
    signed_in += ["/lists/test/members/", "/lists/test/archive/", "/search?q=озеро"]
    problems = {}
    for width in (360, 1280):
        chromium.set_window_size(width, 900)
        chromium.delete_all_cookies()
        for path in anonymous:
            problems[(width, path)] = serious(chromium, base + path)
            picture(chromium, width, path)
        chromium.add_cookie({"name": "session", "value": session, "path": "/"})
        for path in signed_in:
            problems[(width, path)] = serious(chromium, base + path)
            picture(chromium, width, path)
        chromium.get(base + "/me")
        assert "mod@x.example" in chromium.page_source  # the pages were seen signed in
    assert {key: found for key, found in problems.items() if found} == {}


def test_a_month_of_several_pages_passes_axe_and_pages_by_its_links(
    server: RunningServer, chromium, tmp_path: Path
) -> None:
    imported = cli(server.config_path, "archive", "import", "test", str(month_mbox(tmp_path / "m")))
    assert imported.exit_code == 0, imported.output
    month = "/lists/test/archive/2026-03/"
    with browsing(server) as browser:
        base = str(browser.client.base_url).rstrip("/")
    problems = {}
    for width in (360, 1280):
        chromium.set_window_size(width, 900)
        for path in (month, f"{month}?page=2", f"{month}?view=date&page=2"):
            problems[(width, path)] = serious(chromium, base + path)
    assert {key: found for key, found in problems.items() if found} == {}
    chromium.get(f"{base}{month}?lang=ru")
    chromium.find_element(By.LINK_TEXT, "Следующая страница").click()
    assert chromium.current_url == f"{base}{month}?page=2"
    assert chromium.find_element(By.CSS_SELECTOR, "a[aria-current=page]").text == "2"
    chromium.find_element(By.CSS_SELECTOR, "a[rel=prev]").click()
    assert chromium.current_url == base + month
