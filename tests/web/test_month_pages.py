"""A long month's archive page over real HTTP, on SQLite and PostgreSQL: paged (its links,
its counts, 404 past the last page), showing a removed or erased post's change at once, and
the addresses a signed-in member sees never shown to a visitor. The posts come in through
``listserv archive import``, the real import: posting 230 by SMTP would take too long."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from month_support import THREADS, month_mbox
from support import RunningServer, Sink, add, cli, list_table
from web_support import browsing, portal_web

from listserv.web.archive import PAGE_SIZE

MONTH = "/lists/test/archive/2026-03/"
THREAD_LINK = re.compile(r'href="/lists/test/thread/\d+/">([^<]*)</a>')
POST_LINK = re.compile(r'href="/lists/test/message/[^"]+/">([^<]*)</a>')


@pytest.fixture
def server(start_server, tmp_path: Path) -> RunningServer:
    server = start_server(
        lists=[list_table("test", archive="public"), list_table("private")],
        web=portal_web(tmp_path),
    )
    for name in ("test", "private"):
        imported = cli(
            server.config_path, "archive", "import", name, str(month_mbox(tmp_path / "m"))
        )
        assert imported.exit_code == 0, imported.output
    return server


def titles(html: str, link: re.Pattern[str] = THREAD_LINK) -> list[str]:
    return link.findall(html)


def test_a_long_month_is_paged_by_threads_and_by_date(server: RunningServer) -> None:
    with browsing(server) as browser:
        first = browser.get(MONTH, params={"lang": "en"})
        assert first.status_code == 200
        assert f"Posts: {2 * THREADS}" in first.text and "page 1 of 2" in first.text
        assert titles(first.text) == [f"Тема {k:03}" for k in range(THREADS - 1, 14, -1)]
        assert f'rel="next" href="{MONTH}?page=2"' in first.text and 'rel="prev"' not in first.text
        assert f'href="{MONTH}" aria-current="page"' in first.text
        assert "Messages in thread: 2" in first.text

        second = browser.get(MONTH, params={"page": "2"})
        assert titles(second.text) == [f"Тема {k:03}" for k in range(14, -1, -1)]
        assert f'rel="prev" href="{MONTH}"' in second.text and 'rel="next"' not in second.text
        assert "page 2 of 2" in second.text and "(page 2 of 2)" in second.text  # the title too

        pages = 2 * THREADS // PAGE_SIZE + 1
        by_date = [browser.get(MONTH, params={"view": "date", "page": str(n)}) for n in (1, pages)]
        assert [len(titles(p.text, POST_LINK)) for p in by_date] == [
            PAGE_SIZE,
            2 * THREADS - (pages - 1) * PAGE_SIZE,
        ]
        assert titles(by_date[0].text, POST_LINK)[:3] == ["Тема 000", "Re: Тема 000", "Тема 001"]
        assert titles(by_date[1].text, POST_LINK)[-1] == f"Re: Тема {THREADS - 1:03}"
        assert f"page {pages} of {pages}" in by_date[1].text
        assert f'rel="prev" href="{MONTH}?view=date&amp;page={pages - 1}"' in by_date[1].text
        assert f'href="{MONTH}?view=date" aria-label="page 1 of {pages}"' in by_date[1].text

        kazakh = browser.get(MONTH, params={"page": "2", "lang": "kk"}).text
        assert "2-бет, барлығы 2" in kazakh and "Алдыңғы бет" in kazakh
        russian = browser.get(MONTH, params={"lang": "ru"}).text
        assert "страница 1 из 2" in russian and "Следующая страница" in russian


def test_pages_past_the_last_or_not_numbers_are_not_found(server: RunningServer) -> None:
    with browsing(server) as browser:
        for query in ({"page": "3"}, {"view": "date", "page": "4"}, {"page": "0"}, {"page": "x"}):
            assert browser.get(MONTH, params=query).status_code == 404, query
        assert browser.get(MONTH, params={"page": "2"}).status_code == 200
        # A month without posts has its one page, and no second.
        empty = "/lists/test/archive/2026-04/"
        assert browser.get(empty).status_code == 200
        assert browser.get(empty, params={"page": "2"}).status_code == 404
        # A members-only archive is no more visible page by page.
        for page in ("1", "2"):
            private = browser.get("/lists/private/archive/2026-03/", params={"page": page})
            assert private.status_code == 404


def test_a_removed_or_erased_post_leaves_the_month_page_at_once(server: RunningServer) -> None:
    with browsing(server) as browser:
        assert ">Тема 114</a>" in browser.get(MONTH).text
        assert "Гость (g…@x….example)" in browser.get(MONTH).text

        removed = cli(server.config_path, "archive", "remove", "test", "228@month.example")
        assert removed.exit_code == 0, removed.output
        threads = browser.get(MONTH).text
        assert ">Тема 114</a>" not in threads and "Участник 114" not in threads
        by_date = browser.get(MONTH, params={"view": "date", "page": "3"}).text
        assert ">Тема 114</a>" not in by_date and ">Re: Тема 114</a>" in by_date

        forgotten = cli(server.config_path, "archive", "forget", "gone@x.example")
        assert forgotten.exit_code == 0, forgotten.output
        for query in ({}, {"view": "date", "page": "3"}):
            page = browser.get(MONTH, params=query).text
            assert (
                "Гость" not in page and "g…@x….example" not in page and ">Тема 113</a>" not in page
            )


def test_a_member_sees_addresses_a_visitor_never_does(server: RunningServer, sink: Sink) -> None:
    add(server, "member@x.example")
    full_address = re.compile(r"\b(m\d+|answers)@[xy]\.example")
    with browsing(server) as visitor, browsing(server) as member:
        member.sign_in(sink, "member@x.example")
        for query in ({}, {"page": "2"}, {"view": "date"}, {"view": "date", "page": "3"}):
            # The visitor before and after the member, as a shared cache would serve them.
            seen = [visitor.get(MONTH, params=query).text, member.get(MONTH, params=query).text]
            seen.append(visitor.get(MONTH, params=query).text)
            assert full_address.search(seen[1]), query
            for page in (seen[0], seen[2]):
                assert not full_address.search(page) and "…@x….example" in page, query
        # A member of one list is no reader of another's members-only archive.
        assert member.get("/lists/private/archive/2026-03/").status_code == 404
