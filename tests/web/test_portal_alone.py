"""``listserv web``: the portal alone in its own process, against the same database as a
``serve``, stopped cleanly by SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from support import cli, list_table
from web_support import portal_web

ROOT = Path(__file__).resolve().parents[2]


def test_listserv_web_serves_the_portal_alone(config_file, tmp_path: Path) -> None:
    config = config_file(
        lists=[list_table("env-kz", region="Kazakhstan")],
        server={"log_level": "info"},
        web=portal_web(tmp_path),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "listserv", "--config", str(config), "web"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        port = None
        for line in process.stderr:  # blocks until the line is written: no sleeping
            found = re.search(r"portal on port (\d+)", line)
            if found:
                port = int(found.group(1))
                break
        assert port, "the portal never said where it listens"
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and 'href="/lists/env-kz/"' in page.text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_listserv_web_without_a_web_section_is_one_line_error(config_file) -> None:
    result = cli(config_file(), "web")
    assert result.exit_code == 1
    assert result.output.strip().endswith("no [web] section in the configuration: nothing to serve")
