"""Server-side latency of the portal's busiest pages on a large network: the directory, a
list's page and ``/me`` with 1,000 lists and 1,000,000 members, the roster page of a
100,000-member list, and the API streaming those 100,000 members in pages.

Requests go to the real Starlette app in-process (httpx's ASGI transport: no network, so the
times are the server's own), after a warm-up. Prints p50 and p95 per page.

Usage: python bench/web.py [--database URL] [--requests 200]   (default: a fresh SQLite file)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import insert, select

from listserv.config import load_config
from listserv.server import prepare
from listserv.store.api_keys import create_api_key
from listserv.store.db import transaction
from listserv.store.models import MailingList, Member
from listserv.store.portal import create_session
from listserv.web.app import make_web_app

LISTS, MEMBERS, BIG = 1000, 1_000_000, 100_000
REGIONS = ("Kazakhstan", "Kyrgyzstan", "Tajikistan", "Uzbekistan", "Central Asia")
TOPICS = (
    "Environment and Sustainable Development",
    "Gender Equality and Women's Rights",
    "Rights of People with Disabilities",
)
ME = "me@ngo.example.kz"


def populate(app) -> tuple[str, str]:
    """1,000 lists; "list-0000" has 100,000 members, the rest share 900,000; ME is on 20 and
    owns 5 (so it may see list-0000's roster)."""
    with transaction(app.sessions) as session:
        session.execute(
            insert(MailingList),
            [
                {
                    "name": f"list-{i:04}",
                    "settings": {
                        "name": f"list-{i:04}",
                        "title": f"Network list {i}",
                        "region": REGIONS[i % len(REGIONS)],
                        "topic": TOPICS[i % len(TOPICS)],
                        "owners": [ME] if i % 200 == 0 else [f"owner{i}@ngo.example.kz"],
                    },
                }
                for i in range(LISTS)
            ],
        )
        ids = list(session.scalars(select(MailingList.id).order_by(MailingList.name)))
    rows: list[dict] = []
    per_list = (MEMBERS - BIG) // (LISTS - 1)

    def flush(force: bool = False) -> None:
        if rows and (force or len(rows) >= 50_000):
            with transaction(app.sessions) as session:
                session.execute(insert(Member), rows)
            rows.clear()

    for n in range(BIG):
        rows.append({"list_id": ids[0], "address": f"m{n:06}@ngo{n % 97}.example.kz"})
        flush()
    for position, list_id in enumerate(ids[1:], 1):
        for n in range(per_list):
            rows.append({"list_id": list_id, "address": f"p{position}-{n}@org{n % 89}.example.org"})
        if position <= 20:
            rows.append({"list_id": list_id, "address": ME})
        flush()
    flush(force=True)
    with transaction(app.sessions) as session:
        cookie = create_session(session, ME)
        key = create_api_key(session, "bench", [], read_only=True)
    return cookie, key


async def timed(client: httpx.AsyncClient, url: str, count: int, **kwargs) -> list[float]:
    for _ in range(5):
        assert (await client.get(url, **kwargs)).status_code == 200, url
    times = []
    for _ in range(count):
        start = time.perf_counter()
        answer = await client.get(url, **kwargs)
        times.append((time.perf_counter() - start) * 1000)
        assert answer.status_code == 200, url
    return times


def line(label: str, times: list[float]) -> str:
    p95 = statistics.quantiles(times, n=20)[18]
    return f"{label:<38} p50 {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms"


async def measure(app, cookie: str, key: str, count: int) -> None:
    transport = httpx.ASGITransport(app=make_web_app(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        print(line("GET / (1,000 lists)", await timed(client, "/", count)))
        print(line("GET /lists/list-0500/", await timed(client, "/lists/list-0500/", count)))
        signed = {"cookies": {"session": cookie}}
        print(line("GET /me (on 20 lists)", await timed(client, "/me", count, **signed)))
        roster = "/lists/list-0000/members/"
        print(line("GET roster (100,000 members)", await timed(client, roster, count, **signed)))
        after = roster + "?after=m090000@ngo0.example.kz"
        print(line("GET roster, page at 90,000", await timed(client, after, count, **signed)))
        bearer = {"Authorization": f"Bearer {key}"}
        start, pages, seen, cursor, page_times = time.perf_counter(), 0, 0, "", []
        while True:
            began = time.perf_counter()
            answer = await client.get(
                "/api/v1/lists/list-0000/members",
                params={"limit": 1000, "cursor": cursor},
                headers=bearer,
            )
            page_times.append((time.perf_counter() - began) * 1000)
            page = answer.json()
            pages, seen = pages + 1, seen + len(page["items"])
            if page["next"] is None:
                break
            cursor = page["next"]
        total = time.perf_counter() - start
        print(line("API members page (1,000 of 100,000)", page_times))
        print(f"API: {seen:,} members in {pages} pages, {total:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        url = args.database or f"sqlite:///{scratch}/bench.db"
        config = Path(scratch) / "config.toml"
        config.write_text(
            f'[server]\ndomain = "lists.example.org"\n[database]\nurl = "{url}"\n'
            f'[web]\nlisten = "127.0.0.1:0"\nsecret_file = "{scratch}/web.secret"\n',
            encoding="utf-8",
        )
        app = prepare(load_config(config))
        start = time.perf_counter()
        cookie, key = populate(app)
        print(
            f"populated {LISTS:,} lists, {MEMBERS:,} members in {time.perf_counter() - start:.0f} s"
        )
        asyncio.run(measure(app, cookie, key, args.requests))


if __name__ == "__main__":
    main()
