"""Archive import rate and portal latency: imports N generated posts (threads of Russian and
English text, some HTML) into a fresh database, then times archive pages and searches.

Usage: python bench/archive.py [POSTS] [DATABASE_URL]   (default 5000, SQLite in a scratch dir)
"""

import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.testclient import TestClient

from listserv.app import App
from listserv.archive.manage import import_mbox
from listserv.archive.mbox import mbox_entry
from listserv.config import load_config
from listserv.mail.codec import to_bytes
from listserv.server import prepare
from listserv.store.lists import get_list
from listserv.web.app import make_web_app

WORDS = [
    *("вода", "река", "озеро", "Арал", "уровень", "данные", "отчёт", "регион", "засуха"),
    *("лес", "степь", "воздух", "выбросы", "water", "river", "lake", "report", "drought"),
    *("forest", "emissions", "policy", "climate", "budget"),
]
START = datetime(2025, 1, 1, tzinfo=UTC)


def post(i: int, rng: random.Random) -> bytes:
    message = EmailMessage()
    thread = i // 5
    message["From"] = f"Участник {i % 97} <member{i % 97}@ngo.example.kz>"
    message["Subject"] = ("Re: " if i % 5 else "") + f"Обсуждение {thread}: {rng.choice(WORDS)}"
    message["Message-ID"] = f"<{i}@bench.example>"
    if i % 5:
        message["In-Reply-To"] = f"<{i - 1}@bench.example>"
    message["Date"] = (START + timedelta(minutes=37 * i)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    text = "\n".join(" ".join(rng.choices(WORDS, k=12)) for _ in range(15)) + "\n"
    message.set_content(text)
    if i % 4 == 0:
        message.add_alternative(f"<p>{text}</p>", subtype="html")
    return to_bytes(message)


def import_posts(app: App, list_name: str, count: int, scratch: Path) -> tuple[int, float]:
    """Writes *count* generated posts to an mbox in *scratch* and imports them into the list's
    archive: how many were imported, in how many seconds."""
    rng = random.Random(1)
    mbox = scratch / "bench.mbox"
    with mbox.open("wb") as f:
        for i in range(count):
            f.write(mbox_entry("bench@example.org", START, post(i, rng)))
    with app.sessions() as session:
        mlist = get_list(session, list_name, app.domain)
    start = time.perf_counter()
    imported, _ = import_mbox(app.sessions, mlist, mbox)
    return imported, time.perf_counter() - start


def archive_paths(list_name: str, count: int) -> dict[str, list[str]]:
    """The pages of an archive of *count* imported posts, by kind: the archive's index, every
    month, 20 threads, 20 messages, and a search for each word."""
    months = sorted({(START + timedelta(minutes=37 * i)).strftime("%Y-%m") for i in range(count)})
    archive = f"/lists/{list_name}"
    return {
        "index": [f"{archive}/archive/"],
        "month": [f"{archive}/archive/{m}/" for m in months],
        "thread": [f"{archive}/thread/{1 + 5 * t}/" for t in range(min(20, count // 5))],
        "message": [
            f"{archive}/message/{i}@bench.example/" for i in range(0, count, max(1, count // 20))
        ],
        "search": [f"/search?q={w}" for w in WORDS],
    }


def timed(client: TestClient, paths: list[str]) -> str:
    times = []
    for path in paths:
        start = time.perf_counter()
        assert client.get(path).status_code == 200, path
        times.append((time.perf_counter() - start) * 1000)
    p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
    return f"p50 {statistics.median(times):6.1f} ms, p95 {p95:6.1f} ms"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    with tempfile.TemporaryDirectory() as scratch:
        url = sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{scratch}/bench.db"
        config_path = Path(scratch) / "config.toml"
        config_path.write_text(
            f'[server]\ndomain = "lists.example.org"\n[database]\nurl = "{url}"\n'
            f'[web]\nlisten = "127.0.0.1:0"\nsecret_file = "{scratch}/web.secret"\n'
            '[[lists]]\nname = "bench"\narchive = "public"\n',
            encoding="utf-8",
        )
        app = prepare(load_config(config_path))
        imported, elapsed = import_posts(app, "bench", count, Path(scratch))
        print(f"import: {imported} posts in {elapsed:.1f} s ({imported / elapsed:.0f} posts/s)")

        client = TestClient(make_web_app(app))
        paths = archive_paths("bench", count)
        print("archive index ", timed(client, paths["index"] * 20))
        print("month page    ", timed(client, paths["month"] * 2))
        print("thread page   ", timed(client, paths["thread"]))
        print("message page  ", timed(client, paths["message"]))
        print("search        ", timed(client, paths["search"]))
        app.engine.dispose()


if __name__ == "__main__":
    main()
