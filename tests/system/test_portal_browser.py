"""The portal in a real browser (headless Chromium through chromedriver): pages render with
their style sheet under the CSP, links lead where they say, quoted text opens without
JavaScript, search highlights, and the browser reports no console errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import browser_missing, chromium
from sqlalchemy import func, select
from support import DOMAIN, RunningServer, list_table, make_message

from listserv.store.models import ArchivedMessage

if browser_missing() and not os.environ.get("CI"):
    pytest.skip("chromium and chromium-driver are not installed", allow_module_level=True)

from selenium import webdriver
from selenium.webdriver.common.by import By


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path / "chromium", console_log=True) as driver:
        yield driver


def console_errors(driver: webdriver.Chrome) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def archived(server: RunningServer) -> int:
    with server.app.sessions() as session:
        return session.scalar(select(func.count()).select_from(ArchivedMessage)) or 0


def test_a_visitor_browses_a_thread_and_searches(start_server, browser) -> None:
    server = start_server(
        lists=[list_table("test", posting="open", archive="public")],
        web={"listen": "127.0.0.1:0"},
    )
    assert server.server.web is not None
    base = f"http://127.0.0.1:{server.server.web.port}"
    first = make_message("Ерлан <e@x.example>", subject="Водные ресурсы", body="Обсудим реки.\n")
    reply = make_message(
        "Бота <b@y.example>",
        subject="Re: [test] Водные ресурсы",
        body="> Обсудим реки.\nДа, и озёра.\n",
        In_Reply_To=first["Message-ID"],
    )
    server.send("e@x.example", f"test@{DOMAIN}", first)
    server.send("b@y.example", f"test@{DOMAIN}", reply)
    server.wait_for_state(lambda: archived(server) == 2, "two posts archived")

    browser.get(f"{base}/lists/test/archive/?lang=ru")
    assert browser.title.startswith("Архив")
    width = browser.execute_script(
        "return getComputedStyle(document.querySelector('main')).maxWidth"
    )
    assert width != "none"  # the style sheet loaded under default-src 'self'
    browser.find_element(By.CSS_SELECTOR, "table.months a").click()
    browser.find_element(By.PARTIAL_LINK_TEXT, "Водные ресурсы").click()
    assert "/thread/" in browser.current_url
    posts = browser.find_elements(By.CSS_SELECTOR, "article.post")
    assert len(posts) == 2 and "Да, и озёра." in posts[1].text
    quote = posts[1].find_element(By.CSS_SELECTOR, "details.quote blockquote")
    assert not quote.is_displayed()
    posts[1].find_element(By.CSS_SELECTOR, "details.quote summary").click()
    assert quote.is_displayed() and "Обсудим реки." in quote.text

    posts[1].find_element(By.CSS_SELECTOR, "h2 a").click()
    assert browser.find_element(By.TAG_NAME, "h1").text == "[test] Re: Водные ресурсы"
    browser.find_element(By.PARTIAL_LINK_TEXT, "Исходное письмо").click()
    assert "Да, и озёра." in browser.find_element(By.TAG_NAME, "body").text
    browser.back()

    box = browser.find_element(By.CSS_SELECTOR, "header form[role=search] input[name=q]")
    box.send_keys("озеро")
    box.submit()
    assert browser.find_element(By.CSS_SELECTOR, "mark").text == "озёра"
    browser.find_element(By.CSS_SELECTOR, "header a.home").click()
    browser.find_element(By.CSS_SELECTOR, "a[href$='/lists/test/']").click()
    browser.find_element(By.PARTIAL_LINK_TEXT, "Читать архив").click()
    assert browser.current_url == f"{base}/lists/test/archive/"
    assert console_errors(browser) == []
