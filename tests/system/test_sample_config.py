"""The README's first command on a clean clone: ``listserv serve`` on the sample config.toml
accepts a post from a member and writes the outgoing mail to var/outbox/."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from email.parser import BytesParser
from email.policy import default
from pathlib import Path

import httpx
from support import WAIT, cli, free_port, make_message

ROOT = Path(__file__).resolve().parents[2]


def wait_until(condition, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    """Poll *condition* until it returns something true; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not (result := condition()):
        assert time.monotonic() < deadline, "timed out"
        pause.wait(0.05)
    return result


def accepting(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_serve_on_the_sample_config_writes_the_outbox(tmp_path: Path) -> None:
    port, web_port = free_port(), free_port()
    config = tmp_path / "config.toml"
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    assert 'listen = "127.0.0.1:8025"' in text and 'listen = "127.0.0.1:8080"' in text
    text = text.replace("127.0.0.1:8025", f"127.0.0.1:{port}")
    config.write_text(text.replace("127.0.0.1:8080", f"127.0.0.1:{web_port}"), encoding="utf-8")

    assert (
        cli(
            config, "members", "add", "--no-welcome", "environment-kz", "a@x.example", "b@y.example"
        ).exit_code
        == 0
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "listserv", "serve"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LISTSERV_CONFIG": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: accepting(port) or server.poll() is not None)
        assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
        message = make_message(
            "a@x.example", "environment-kz@lists.example.org", "Отчёт", body="Текст отчёта.\n"
        )
        with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as client:
            client.send_message(message)
        outbox = tmp_path / "var" / "outbox"
        (written,) = wait_until(lambda: list(outbox.glob("*.eml")) if outbox.exists() else [])
        raw = written.read_bytes()
        assert raw.startswith(b"X-Envelope-From: <environment-kz-bounces@lists.example.org>\r\n")
        assert b"X-Envelope-To: a@x.example, b@y.example\r\n" in raw
        post = BytesParser(policy=default).parsebytes(raw)
        assert post["Subject"] == "[environment-kz] Отчёт"
        assert post["List-Id"] == (
            "Окружающая среда и устойчивое развитие — Казахстан <environment-kz.lists.example.org>"
        )
        assert post.get_content().startswith("Текст отчёта.")
        assert (tmp_path / "var" / "listserv.db").exists()
        # The sample list's archive is public: the post is on the portal.
        archive = f"http://127.0.0.1:{web_port}/lists/environment-kz/archive/"
        assert "Писем: 1" in httpx.get(archive, headers={"Accept-Language": "ru"}).text
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0].decode()
    assert server.returncode == 0, output
    assert "Traceback" not in output
