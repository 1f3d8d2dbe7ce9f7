"""``listserv archive`` import/export/remove/forget/reindex and ``listserv web``, checked
through the running portal over HTTP (SQLite and PostgreSQL)."""

from __future__ import annotations

import gzip
import os
import re
import signal
import subprocess
import sys
import threading
from email.message import EmailMessage
from pathlib import Path

import httpx
from support import RunningServer, cli, list_table

from listserv.mail.codec import to_bytes

ROOT = Path(__file__).resolve().parents[2]


def mail(mid: str, date: str, sender: str, subject: str, body: str, irt: str = "") -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["Subject"] = subject
    message["Date"] = date
    message["Message-ID"] = f"<{mid}>"
    if irt:
        message["In-Reply-To"] = f"<{irt}>"
    message.set_content(body)
    return to_bytes(message)


def write_mbox(path: Path, messages: list[bytes]) -> Path:
    with path.open("wb") as f:
        for raw in messages:
            f.write(b"From someone@example.org Sat Jan  3 10:00:00 2026\n")
            f.write(re.sub(rb"^From ", b">From ", raw.replace(b"\r\n", b"\n"), flags=re.M))
            f.write(b"\n")
    return path


MESSAGES = [
    # The reply comes first, as in a badly sorted export.
    mail(
        "r1@y.example",
        "Sun, 04 Jan 2026 09:00:00 +0000",
        "Бота <bota@y.example>",
        "Re: [env] Водные ресурсы",
        "Согласна.\nFrom here on, a line that mbox must quote.\n",
        irt="p1@x.example",
    ),
    mail(
        "p1@x.example",
        "Sat, 03 Jan 2026 10:00:00 +0000",
        "Ерлан <erlan@x.example>",
        "[env] Водные ресурсы",
        "Предлагаю обсудить водные ресурсы региона.\n",
    ),
    mail(
        "p2@x.example",
        "Mon, 02 Feb 2026 10:00:00 +0000",
        "erlan@x.example",
        "Отчёт",
        "Отчёт за январь.\n",
    ),
]


def portal(start_server) -> tuple[RunningServer, httpx.Client]:
    server = start_server(
        lists=[list_table("env", archive="public"), list_table("copy", archive="public")],
        web={"listen": "127.0.0.1:0"},
    )
    assert server.server.web is not None
    return server, httpx.Client(base_url=f"http://127.0.0.1:{server.server.web.port}", timeout=10)


def test_import_is_idempotent_threads_and_round_trips_through_export(
    start_server, tmp_path: Path
) -> None:
    server, client = portal(start_server)
    mbox = write_mbox(tmp_path / "env.mbox", [*MESSAGES, MESSAGES[1]])
    first = cli(server.config_path, "archive", "import", "env", str(mbox))
    assert first.exit_code == 0, first.output
    assert first.output.strip() == "env: 3 posts imported, 1 already archived"
    again = cli(server.config_path, "archive", "import", "env", str(mbox))
    assert again.output.strip() == "env: 0 posts imported, 4 already archived"

    january = client.get("/lists/env/archive/2026-01/").text
    assert "Messages in thread: 2" in january and "[env] Водные ресурсы" in january
    thread = client.get(re.search(r'href="(/lists/env/thread/\d+/)"', january).group(1)).text
    assert thread.index("Предлагаю") < thread.index("Согласна")
    assert "Posts: 1" in client.get("/lists/env/archive/").text  # February

    exported = tmp_path / "january.mbox"
    result = cli(
        server.config_path, "archive", "export", "env", "--month", "2026-01", "-o", str(exported)
    )
    assert result.exit_code == 0, result.output
    data = exported.read_bytes()
    assert data.count(b"\nFrom ") + data.startswith(b"From ") == 2
    assert b"\n>From here on" in data and b"erlan@x.example" in data  # the operator's copy
    assert cli(server.config_path, "archive", "import", "copy", str(exported)).exit_code == 0
    copy = client.get("/lists/copy/message/r1@y.example/")
    assert "From here on, a line" in copy.text and "&gt;From here" not in copy.text
    bad = cli(server.config_path, "archive", "export", "env", "--month", "2026-1x")
    assert bad.exit_code == 1 and bad.output.startswith("listserv: --month")


def test_remove_and_forget_delete_posts_from_pages_search_feeds_and_exports(
    start_server, tmp_path: Path
) -> None:
    server, client = portal(start_server)
    cli(server.config_path, "archive", "import", "env", str(write_mbox(tmp_path / "a", MESSAGES)))
    assert "Ерлан" in client.get("/search", params={"q": "водный"}).text

    removed = cli(
        server.config_path, "archive", "remove", "env", "<r1@y.example>", "--reason", "spam"
    )
    assert removed.exit_code == 0, removed.output
    page = client.get("/lists/env/message/r1@y.example/").text
    assert "This post was removed. Reason: spam" in page and "Согласна" not in page
    assert client.get("/lists/env/message/r1@y.example/raw").status_code == 404
    assert "Results: 0" in client.get("/search", params={"q": "согласна"}).text

    forgot = cli(server.config_path, "archive", "forget", "Erlan@X.example")
    assert forgot.output.strip() == "erased 2 posts by Erlan@X.example"
    assert "Results: 0" in client.get("/search", params={"q": "водные"}).text
    thread = client.get("/lists/env/message/p1@x.example/").text
    assert "erased at its author" in thread and "Ерлан" not in thread
    assert "<entry>" not in client.get("/lists/env/feed.atom").text
    assert client.get("/lists/env/archive/2026-01.mbox").content == b""
    export = cli(server.config_path, "archive", "export", "env")
    assert export.exit_code == 0 and export.output == ""

    reindexed = cli(server.config_path, "archive", "reindex")
    assert reindexed.output.splitlines() == ["copy: 0 posts indexed", "env: 0 posts indexed"]
    unknown = cli(server.config_path, "archive", "remove", "env", "nope@x")
    assert (
        unknown.exit_code == 1 and unknown.output == "listserv: no archived post 'nope@x' in env\n"
    )
    assert (
        cli(server.config_path, "archive", "import", "nolist", str(tmp_path / "a")).exit_code == 1
    )


def test_a_gzipped_export_imports_and_reindex_keeps_search_and_threads(
    start_server, tmp_path: Path
) -> None:
    server, client = portal(start_server)
    plain = write_mbox(tmp_path / "a", MESSAGES)
    gzipped = tmp_path / "env.mbox.gz"
    gzipped.write_bytes(gzip.compress(plain.read_bytes()))
    imported = cli(server.config_path, "archive", "import", "env", str(gzipped))
    assert imported.output.strip() == "env: 3 posts imported, 0 already archived"
    result = cli(server.config_path, "archive", "reindex", "env")
    assert result.output.strip() == "env: 3 posts indexed"
    found = client.get("/search", params={"q": "ресурсов"}).text
    assert "Results: 2" in found and "<mark>ресурсы</mark>" in found


def test_listserv_web_runs_the_portal_alone_until_sigterm(start_server, tmp_path: Path) -> None:
    server, _ = portal(start_server)
    cli(server.config_path, "archive", "import", "env", str(write_mbox(tmp_path / "a", MESSAGES)))
    process = subprocess.Popen(
        [sys.executable, "-m", "listserv", "--config", str(server.config_path), "web"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    ports: list[int] = []
    ready = threading.Event()

    def follow() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            found = re.search(r"portal on port (\d+)", line)
            if found:
                ports.append(int(found.group(1)))
                ready.set()

    threading.Thread(target=follow, daemon=True).start()
    try:
        assert ready.wait(30), "the portal did not start"
        page = httpx.get(f"http://127.0.0.1:{ports[0]}/lists/env/archive/", timeout=10)
        assert page.status_code == 200 and "Posts: 2" in page.text
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
