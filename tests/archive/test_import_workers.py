"""An import's worker processes read posts without running the importing program's main
script again (``listserv``'s imports the whole server): a real script, real workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from functools import partial

from listserv.archive.manage import archive_entries, read_all

print("main script ran", flush=True)  # in every process that runs this script

if __name__ == "__main__":
    raw = b"From: a@example.org\\nSubject: s\\nMessage-ID: <a@example.org>\\n\\nWater.\\n"
    batches = iter([[raw]] * 5)  # more batches than one: read by worker processes
    entries = list(read_all(partial(archive_entries, ""), batches))
    print(len(entries), entries[0][0].words, flush=True)
    print(sys.modules["__main__"].__file__ == __file__, flush=True)
"""


def test_workers_do_not_run_the_main_script_again(tmp_path: Path) -> None:
    script = tmp_path / "importer.py"
    script.write_text(SCRIPT, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["main script ran", "5 s water", "True"]
