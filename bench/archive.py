"""The archive at scale: imports N generated posts (threads of Russian and English text, some
HTML, some attachments) into a fresh database with ``import_mbox`` (as ``listserv archive
import`` does), reports the import rate and the database's size against the mbox's, then
times the month, thread, message and search pages server-side and reports the portal's RSS.

The pages are served by a portal process of their own (the real Starlette app, requests over
httpx's ASGI transport: no network, so the times are the server's), which prints its peak RSS
as it ends: the importing process's memory is not the portal's. Next to each page's wall
time is the CPU time the portal spent on it, steadier on a machine others load.
``bench/archive_copies.py`` grows the archive to a million posts for the page latencies.

The mbox is generated once per size into /tmp/listserv-bench-archive3-N.mbox and reused.

Usage: python bench/archive.py [POSTS] [DATABASE_URL] [--pages-only | --import-only]
       (default 5000 posts, SQLite in a scratch dir). The database is emptied first (every
       table dropped: give PostgreSQL a database of its own); --pages-only times the pages of
       a database an earlier run filled, --import-only stops after the import.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from email.header import Header
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import MetaData, text

from listserv.app import App
from listserv.archive.manage import import_mbox
from listserv.archive.mbox import mbox_entry
from listserv.config import load_config
from listserv.server import prepare
from listserv.store.lists import get_list
from listserv.web.app import make_web_app

WORDS = [
    *("вода", "река", "озеро", "Арал", "уровень", "данные", "отчёт", "регион", "засуха"),
    *("лес", "степь", "воздух", "выбросы", "water", "river", "lake", "report", "drought"),
    *("forest", "emissions", "policy", "climate", "budget"),
]
STEP = timedelta(minutes=37)  # 1,167 posts a month
# A million posts STEP apart end in 2025: a Date later than the archiving day would be read
# as a wrong clock (the post is dated when it is archived), which would pile posts up in
# the current month.
START = datetime(1955, 1, 1, tzinfo=UTC)
SENDERS = [
    f"From: {Header(f'Участник {n}', 'utf-8').encode()} <member{n}@ngo.example.kz>"
    for n in range(97)
]
ATTACHMENT = base64.encodebytes(bytes(range(256)) * 3).decode()  # a 768-byte file


def post(i: int, rng: random.Random) -> bytes:
    """Post *i*: every fifth starts a thread the next four answer; every fourth has an HTML
    alternative, every tenth a small attachment. Written by hand (the email package is too
    slow to make a million)."""
    subject = ("Re: " if i % 5 else "") + f"Обсуждение {i // 5}: {rng.choice(WORDS)}"
    date = (START + STEP * i).strftime("%a, %d %b %Y %H:%M:%S +0000")
    body = "\n".join(" ".join(rng.choices(WORDS, k=12)) for _ in range(15)) + "\n"
    headers = [
        SENDERS[i % 97],
        f"Subject: {Header(subject, 'utf-8').encode()}",
        f"Message-ID: <{i}@bench.example>",
        f"Date: {date}",
        "MIME-Version: 1.0",
    ]
    if i % 5:
        headers.append(f"In-Reply-To: <{i - 1}@bench.example>")
    plain = 'Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: 8bit\n\n' + body
    parts = [plain]
    if i % 4 == 0:
        html = f"<p>{body}</p>\n"
        alternative = 'Content-Type: text/html; charset="utf-8"\n'
        alternative += "Content-Transfer-Encoding: 8bit\n\n" + html
        parts = [multipart("alternative", [plain, alternative], f"alt{i}")]
    if i % 10 == 0:
        file = 'Content-Type: application/octet-stream; name="data.bin"\n'
        file += 'Content-Disposition: attachment; filename="data.bin"\n'
        file += "Content-Transfer-Encoding: base64\n\n" + ATTACHMENT
        parts = [multipart("mixed", [*parts, file], f"mix{i}")]
    return ("\n".join(headers) + "\n" + parts[0]).encode()


def multipart(kind: str, parts: list[str], boundary: str) -> str:
    inner = "".join(f"--{boundary}\n{part}\n" for part in parts)
    return f'Content-Type: multipart/{kind}; boundary="{boundary}"\n\n{inner}--{boundary}--\n'


def cached_mbox(count: int) -> Path:
    path = Path(f"/tmp/listserv-bench-archive3-{count}.mbox")
    if not path.exists():
        rng = random.Random(1)
        partial = path.with_suffix(".partial")
        with partial.open("wb") as f:
            for i in range(count):
                f.write(mbox_entry("bench@example.org", START, post(i, rng)))
        partial.rename(path)
    return path


def database_size(app, url: str) -> int:
    if url.startswith("sqlite"):
        database = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in database.parent.glob(database.name + "*"))
    with app.engine.connect() as connection:
        return int(
            connection.scalar(
                text(
                    "SELECT sum(pg_total_relation_size(c)) FROM unnest("
                    "ARRAY['archived_messages', 'archive_search']::regclass[]) AS c"
                )
            )
        )


def emptied(url: str) -> None:
    """A PostgreSQL benchmark database without the tables of an earlier run."""
    if url.startswith("sqlite"):
        return
    from sqlalchemy import create_engine

    engine = create_engine(url)
    metadata = MetaData()
    metadata.reflect(engine)
    metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


def timed(client: httpx.AsyncClient, paths: list[str]) -> dict[str, float]:
    """p50 and p95 of each request's time, and of the CPU time this process spent on it:
    on a machine others load, the CPU time is what an idle machine's wall time would be
    (PostgreSQL's own time apart)."""

    async def run() -> list[tuple[float, float]]:
        times = []
        for path in paths:
            start, cpu = time.perf_counter(), time.process_time()
            response = await client.get(path)
            times.append(((time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000))
            assert response.status_code == 200, path
        return times

    loop = asyncio.new_event_loop()
    loop.run_until_complete(client.get(paths[0]))  # warm the caches
    times = loop.run_until_complete(run())
    return {
        **percentiles("", [wall for wall, _ in times]),
        **percentiles("cpu ", [cpu for _, cpu in times]),
    }


def percentiles(name: str, times: list[float]) -> dict[str, float]:
    p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
    return {f"{name}p50": statistics.median(times), f"{name}p95": p95}


def archive_paths(list_name: str, count: int) -> dict[str, list[str]]:
    """The pages of an archive of *count* imported posts, by kind: the archive's index, 40
    months (their first page of threads, and of posts by date), the threads and messages
    of 100 posts, a search for each word (twice)."""
    rng = random.Random(2)
    last_month = (count - 1) * STEP
    months = {(START + rng.random() * last_month).strftime("%Y-%m") for _ in range(40)}
    posts = [rng.randrange(count) for _ in range(100)]
    archive = f"/lists/{list_name}"
    return {
        "index": [f"{archive}/archive/"] * 20,
        "month": [f"{archive}/archive/{m}/" for m in sorted(months)],
        "by date": [f"{archive}/archive/{m}/?view=date" for m in sorted(months)],
        "thread": [f"{archive}/thread/{i - i % 5 + 1}/" for i in posts],
        "message": [f"{archive}/message/{i}@bench.example/" for i in posts],
        "search": [f"/search?q={w}" for w in WORDS] * 2,
    }


def serve_pages(config_path: str, count: int) -> None:
    """The portal's side: every page timed, then the figures and the peak RSS as JSON."""
    app = prepare(load_config(Path(config_path)))
    transport = httpx.ASGITransport(app=make_web_app(app))
    client = httpx.AsyncClient(transport=transport, base_url="http://portal")
    figures = {page: timed(client, paths) for page, paths in archive_paths("bench", count).items()}
    status = Path("/proc/self/status").read_text()
    peak = next(line for line in status.splitlines() if line.startswith("VmHWM"))
    print(json.dumps({"pages": figures, "rss_mb": int(peak.split()[1]) / 1024}))


def import_posts(app: App, list_name: str, count: int) -> tuple[int, float]:
    """Imports *count* generated posts (the cached mbox) into the list's archive: how many
    were imported, in how many seconds."""
    with app.sessions() as session:
        mlist = get_list(session, list_name, app.domain)
    start = time.perf_counter()
    imported, _ = import_mbox(app.sessions, mlist, cached_mbox(count))
    return imported, time.perf_counter() - start


def import_timed(app: App, count: int) -> None:
    cpu = DescendantsCPU()
    server = ServerCPU(app)
    cpu.start()
    own = time.process_time()
    imported, elapsed = import_posts(app, "bench", count)
    own = time.process_time() - own
    cpu.stop()
    backend = server.seconds()
    assert imported == count, imported
    print(f"import: {imported} posts in {elapsed:.1f} s ({imported / elapsed:.0f} posts/s)")
    print(f"load average over the last 5 minutes: {os.getloadavg()[1]:.1f}")
    workers = sum(cpu.seconds.values())
    total = own + workers + backend
    # On two idle cores the workers read while this process and the database write, so the
    # import takes the longer of half of all the CPU time and the writing (ours + the server's).
    idle = imported / max(total / 2, own + backend)
    print(
        f"CPU: {own:.1f} s writing, {workers:.1f} s in the workers reading, {backend:.1f} s in "
        f"the database server's backends: {1000 * total / imported:.2f} ms a post, "
        f"{imported / total:.0f} posts per CPU-second; ~{idle:.0f}/s on 2 idle cores"
    )


class ServerCPU:
    """The CPU seconds PostgreSQL's backends serving this database spent since it was made
    (read from /proc: the server runs on this host); always 0 for SQLite."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.start = self.used()

    def used(self) -> dict[int, float]:
        if self.app.engine.dialect.name != "postgresql":
            return {}
        with self.app.engine.connect() as connection:
            pids = connection.scalars(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            ).all()
        return {pid: process_cpu(pid) for pid in pids}

    def seconds(self) -> float:
        return sum(cpu - self.start.get(pid, 0.0) for pid, cpu in self.used().items())


def process_cpu(pid: int) -> float:
    """User and system CPU seconds of a process, 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class DescendantsCPU(threading.Thread):
    """The CPU seconds of this process's descendants (the import's workers are children of
    multiprocessing's fork server), read from /proc while they run."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seconds: dict[int, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            self.sample()

    def stop(self) -> None:
        self.stopping.set()
        self.join()

    def sample(self) -> None:
        parents, used = {}, {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(stat.parent.name)
            parents[pid] = int(fields[1])
            used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for pid in used:
            ancestor = parents.get(pid)
            while ancestor not in (None, 0, 1, os.getpid()):
                ancestor = parents.get(ancestor)
            if ancestor == os.getpid():
                self.seconds[pid] = max(self.seconds.get(pid, 0.0), used[pid])


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # progress shows in a log file
    args = [a for a in sys.argv[1:] if a not in ("--pages-only", "--import-only")]
    count = int(args[0]) if args else 5000
    importing = "--pages-only" not in sys.argv
    with tempfile.TemporaryDirectory() as scratch:
        url = args[1] if len(args) > 1 else f"sqlite:///{scratch}/bench.db"
        database = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
        print(f"{database}, {count} posts, load average {os.getloadavg()[0]:.1f}")
        config_path = Path(scratch) / "config.toml"
        config_path.write_text(
            f'[server]\ndomain = "lists.example.org"\n[database]\nurl = "{url}"\n'
            f'[web]\nlisten = "127.0.0.1:0"\nsecret_file = "{scratch}/web.secret"\n'
            '[[lists]]\nname = "bench"\narchive = "public"\n',
            encoding="utf-8",
        )
        if importing:
            emptied(url)
        app = prepare(load_config(config_path))
        if importing:
            import_timed(app, count)
            raw, what = cached_mbox(count).stat().st_size, "mbox"
        else:
            with app.engine.connect() as connection:
                raw = connection.scalar(text("SELECT sum(size) FROM archived_messages"))
            what = "posts"
        raw_mb, db_mb = raw / 1e6, database_size(app, url) / 1e6
        print(f"size: {what} {raw_mb:.0f} MB, database {db_mb:.0f} MB ({db_mb / raw_mb:.2f}×)")
        app.engine.dispose()
        if "--import-only" in sys.argv:
            return
        portal = subprocess.run(
            [sys.executable, __file__, "--serve-pages", str(config_path), str(count)],
            capture_output=True,
            text=True,
        )
        if portal.returncode:
            sys.exit(portal.stderr)
        result = json.loads(portal.stdout.splitlines()[-1])
        for page, t in result["pages"].items():
            print(
                f"{page:8} p50 {t['p50']:6.1f} ms, p95 {t['p95']:6.1f} ms "
                f"(CPU p50 {t['cpu p50']:5.1f} ms, p95 {t['cpu p95']:5.1f} ms)"
            )
        print(f"portal RSS: {result['rss_mb']:.0f} MB (peak)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve-pages"]:
        serve_pages(sys.argv[2], int(sys.argv[3]))
    else:
        main()
