"""``listserv members import`` reads and inserts a long file in chunks: its memory does not
grow with the file. A real ``listserv`` subprocess, its peak RSS read by the process itself
as it exits; both databases."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from support import list_table

ROOT = Path(__file__).resolve().parents[2]
# The peak RSS of the process (VmHWM, in kB: unlike ru_maxrss not inherited across the
# fork from a big test runner), printed last as it exits.
MEASURED = (
    "import atexit, re, sys\n"
    "peak = lambda: re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1]\n"
    "atexit.register(lambda: print(peak(), file=sys.stderr))\n"
    "from listserv.cli.main import main\n"
    "main()\n"
)


def test_importing_many_addresses_stays_small(
    config_file: Callable[..., Path], tmp_path: Path
) -> None:
    config = config_file(lists=[list_table("test")])
    count = 100_000
    addresses = tmp_path / "addresses.txt"
    with addresses.open("w", encoding="utf-8") as out:
        for i in range(count):
            out.write(f"Member number {i} <member.number.{i}@organisation{i % 97}.example>\n")
    command = ["--config", str(config), "members", "import", "test", str(addresses)]
    done = subprocess.run(
        [sys.executable, "-c", MEASURED, *command],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"imported {count} new members (0 already subscribed)\n"
    peak_mb = int(done.stderr.strip().splitlines()[-1]) / 1024
    assert peak_mb < 120, f"peak RSS {peak_mb:.0f} MB"
