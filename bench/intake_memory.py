"""Memory of one large post sent to several list addresses in one SMTP transaction.

    python bench/intake_memory.py [--size-mb 10] [--lists 5] [--database sqlite,postgresql]

For each database, two fresh ``serve`` processes: one is sent the post for one list address
(the reference), the other the same post for ``--lists`` addresses in one transaction. Each
post is waited for until every list has routed it; then the process's peak RSS (VmHWM) and
the bytes the inbox holds are printed. The lists have no members: what is measured is intake
storing the message and the router reading it, not fan-out.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fanout import (  # noqa: E402
    DOMAIN,
    base_config,
    drop_schema,
    free_port,
    make_database,
    peak_rss_mb,
    wait_for_port,
)
from sqlalchemy import func, select, text  # noqa: E402

from listserv.config import load_config  # noqa: E402
from listserv.server import prepare  # noqa: E402
from listserv.store.models import InboxMessage  # noqa: E402

SENDER = "poster@example.com"


def big_post(size: int) -> bytes:
    """A post of about *size* bytes, a base64 attachment of random bytes (which neither
    PostgreSQL nor anything else can compress)."""
    head = (
        f"From: {SENDER}\r\nTo: list0@{DOMAIN}\r\nSubject: Large\r\nMIME-Version: 1.0\r\n"
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    encoded = base64.encodebytes(os.urandom(size * 3 // 4 // 77 * 57))
    return head + encoded.replace(b"\n", b"\r\n")


def write_config(path: Path, url: str, listen: int, lists: int, size: int) -> None:
    tables = "".join(
        f'\n[[lists]]\nname = "list{i}"\nposting = "open"\nmax_post_size = 0\n'
        for i in range(lists)
    )
    config = base_config(url, listen, 1).replace(
        "[server]\n", f"[server]\nmax_message_size = {size * 2}\n"
    )
    path.write_text(config + tables, encoding="utf-8")


def routed(config_path: Path) -> tuple[int, int]:
    """How many inbox rows are routed, and how many bytes of received mail the database
    holds (its tables' sizes on PostgreSQL, the file's on SQLite)."""
    app = prepare(load_config(config_path))
    with app.sessions() as session:
        done = session.scalar(
            select(func.count()).select_from(InboxMessage).where(InboxMessage.status != "new")
        )
        if app.engine.dialect.name == "postgresql":
            stored = session.scalar(
                text(
                    "SELECT sum(pg_total_relation_size(oid)) FROM pg_class "
                    "WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'"
                )
            )
        else:
            stored = Path(app.engine.url.database or "").stat().st_size
    app.engine.dispose()
    return done or 0, int(stored or 0)


def measure(database: str, recipients: int, size: int) -> tuple[float, float, float, int]:
    """The peak RSS (MB) of a serve process sent one post for *recipients* lists: idle, once
    the post was accepted (intake: the 250 comes after the commit), and once every list
    routed it; and the bytes the database holds then."""
    scratch = Path(tempfile.mkdtemp(prefix="listserv-bench-intake-memory-"))
    url, schema = make_database(database, scratch)
    listen = free_port()
    config_path = scratch / "config.toml"
    write_config(config_path, url, listen, recipients, size)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "listserv", "--config", str(config_path), "serve"]
    server = subprocess.Popen(command, env=env)
    try:
        wait_for_port(listen, server, "listserv serve")
        idle = peak_rss_mb(server.pid)
        with smtplib.SMTP("127.0.0.1", listen, timeout=120) as client:
            rcpts = [f"list{i}@{DOMAIN}" for i in range(recipients)]
            client.sendmail(SENDER, rcpts, big_post(size))
        accepted = peak_rss_mb(server.pid)
        deadline = time.monotonic() + 300
        while (done := routed(config_path))[0] < recipients:
            if time.monotonic() > deadline:
                sys.exit(f"only {done[0]} of {recipients} routed within 5 minutes")
            time.sleep(0.2)
        return idle, accepted, peak_rss_mb(server.pid), done[1]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        drop_schema(schema)
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=10)
    parser.add_argument("--lists", type=int, default=5)
    parser.add_argument("--database", default="sqlite,postgresql")
    args = parser.parse_args()
    size = int(args.size_mb * 1_000_000)
    print(f"one {size / 1e6:g} MB post; peak RSS of serve, and what the database holds:")
    for database in args.database.split(","):
        for recipients in (1, args.lists):
            idle, accepted, routed_peak, stored = measure(database, recipients, size)
            print(
                f"  {database:<10} {recipients} address(es): idle {idle:4.0f} MB, "
                f"accepted {accepted:4.0f} MB (+{accepted - idle:3.0f}), "
                f"routed {routed_peak:4.0f} MB (+{routed_peak - idle:3.0f}), "
                f"database {stored / 1e6:5.1f} MB"
            )


if __name__ == "__main__":
    main()
