"""How long ``listserv members import`` takes for N new addresses (then again, all known).

Usage: python bench/import_members.py [N] [DATABASE_URL]   (default 100000, a fresh SQLite file)
"""

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from click.testing import CliRunner

from listserv.cli.main import main as listserv


def run(config: Path, *args: str) -> str:
    result = CliRunner().invoke(listserv, ["--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as scratch:
        url = sys.argv[2] if len(sys.argv) > 2 else f"sqlite:///{scratch}/bench.db"
        config = Path(scratch) / "config.toml"
        config.write_text(
            f'[server]\ndomain = "lists.example.org"\n[database]\nurl = "{url}"\n'
            '[[lists]]\nname = "bench"\n',
            encoding="utf-8",
        )
        members = Path(scratch) / "members.txt"
        lines = (f"Участник {i} <member{i}@ngo{i % 97}.example.kz>" for i in range(count))
        members.write_text("\n".join(lines), encoding="utf-8")
        run(config, "db", "upgrade")
        for label in ("new", "known"):
            start = time.perf_counter()
            output = run(config, "members", "import", "bench", str(members))
            print(f"{label:>5}: {time.perf_counter() - start:6.2f} s  {output}")


if __name__ == "__main__":
    main()
