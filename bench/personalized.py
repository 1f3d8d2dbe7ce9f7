"""Personalized fan-out: one post to N members, one SMTP transaction per member, each copy with
its own VERP envelope sender, one-click List-Unsubscribe headers and footer link, sent by the
real server's delivery workers to Postfix's C smtp-sink.

Usage: python bench/personalized.py N [--connections C] [--database URL] [--dkim]

``--dkim`` generates a throwaway RSA-2048 key in the temporary directory and configures
``[dkim]``, so every copy is DKIM-signed on its own. Prints the time to queue the post
(decorate once, store, split into batches), the time to send every copy, messages per second,
the CPU seconds listserv spent sending (steadier than wall time on a shared machine), CPU per
wall second (above 1: more than one core at work) and the process's peak RSS. Needs
/usr/sbin/smtp-sink (Debian package postfix).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.hashes import SHA256
from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from listserv.auth.dkim import generate_key
from listserv.config import load_config
from listserv.delivery.queue_admin import queue_counts
from listserv.intake.router import process
from listserv.server import Server, prepare
from listserv.store.db import transaction
from listserv.store.models import InboxMessage, MailingList, Member

DOMAIN = "lists.example.org"
BODY = (
    "Коллеги, добрый день!\n\n"
    + "Приглашаем на региональный семинар по устойчивому развитию и охране окружающей среды. " * 60
    + "\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sink(port: int) -> subprocess.Popen:
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    process = subprocess.Popen([sink, *user, f"127.0.0.1:{port}", "1000"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    raise SystemExit("smtp-sink did not start")


def write_config(
    directory: Path, database: str, sink_port: int, connections: int, dkim: bool
) -> Path:
    path = directory / "config.toml"
    signing = ""
    if dkim:
        generate_key(directory / "dkim.pem", 2048)
        signing = f'[dkim]\nselector = "bench"\nprivate_key = "{directory / "dkim.pem"}"\n'
    path.write_text(
        f"""
[server]
domain = "{DOMAIN}"
listen = "127.0.0.1:0"
log_level = "warning"

[database]
url = "{database or f"sqlite:///{directory / 'bench.db'}"}"

[delivery]
smarthost = "127.0.0.1:{sink_port}"
connections = {connections}
max_recipients = 500
verp = true

[web]
listen = "127.0.0.1:0"
base_url = "https://{DOMAIN}"
secret_file = "{directory / "web.secret"}"

{signing}
[[lists]]
name = "bench"
title = "Окружающая среда — Казахстан"
language = "ru"
posting = "open"
""",
        encoding="utf-8",
    )
    return path


def post() -> bytes:
    return (
        f"From: Алия <aliya@ngo.example.kz>\r\nTo: bench@{DOMAIN}\r\n"
        "Subject: =?utf-8?b?0KHQtdC80LjQvdCw0YA=?=\r\nMessage-ID: <bench@ngo.example.kz>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n" + BODY.replace("\n", "\r\n")
    ).encode()


async def send_all(server: Server, total: int) -> None:
    await server.start()
    try:
        while (await asyncio.to_thread(queue_counts, server.app))["sent"] < total:
            await asyncio.sleep(0.2)
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("members", type=int)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--database", default="", help="default: SQLite in a temporary dir")
    parser.add_argument("--dkim", action="store_true", help="sign every copy (RSA-2048)")
    args = parser.parse_args()
    port = free_port()
    sink = start_sink(port)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            path = write_config(Path(scratch), args.database, port, args.connections, args.dkim)
            config = load_config(path)
            app = prepare(config)
            with transaction(app.sessions) as session:
                list_id = session.scalar(select(MailingList.id).where(MailingList.name == "bench"))
                session.execute(
                    insert(Member),
                    [
                        {"list_id": list_id, "address": f"member{i}@ngo{i % 97}.example.kz"}
                        for i in range(args.members)
                    ],
                )
                stored = InboxMessage(
                    mail_from="aliya@ngo.example.kz",
                    rcpt_to=f"bench@{DOMAIN}",
                    raw=post(),
                    claimed_by="bench",
                )
                session.add(stored)
                session.flush()
                message_id = stored.id
            started = time.perf_counter()
            outcome = process(app, message_id)
            queued = time.perf_counter() - started
            assert outcome == "distributed", outcome
            started, cpu = time.perf_counter(), time.process_time()
            asyncio.run(send_all(Server(app), args.members))
            sent, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        sink.terminate()
        sink.wait()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    signed = ", DKIM-signed" if args.dkim else ""
    print(
        f"{args.members} personalized messages{signed} ({args.connections} connections): "
        f"queued in {queued:.2f} s, sent in {sent:.1f} s, "
        f"{args.members / sent:.0f} messages/s, {cpu:.1f} s CPU ({cpu / sent:.2f} per second), "
        f"peak RSS {rss:.0f} MB"
    )
    if app.signer is not None:
        # The floor, measured now on the same loaded machine: the RSA step alone, in two
        # threads as the delivery workers sign. CPU per signature is the steadier figure
        # when other work takes the cores.
        raw, cpu_each = signing_rate(app.signer.key)
        share = args.members / sent / raw
        print(
            f"reference: RSA-2048 signatures alone, 2 threads: {raw:.0f}/s, "
            f"{cpu_each * 1000:.3f} ms CPU each (the copies reached {share:.0%} of it "
            f"at {cpu / args.members * 1000:.3f} ms CPU each; "
            f"at that rate {args.members} copies would take {args.members / raw:.1f} s)"
        )


def signing_rate(key: Any, seconds: float = 3.0) -> tuple[float, float]:
    """Signatures per second in two threads, and CPU seconds per signature."""
    digest = b"\0" * 32
    counts: list[int] = []

    def sign() -> None:
        count, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            key.sign(digest, PKCS1v15(), Prehashed(SHA256()))
            count += 1
        counts.append(count)

    threads = [threading.Thread(target=sign) for _ in range(2)]
    cpu = time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds, (time.process_time() - cpu) / sum(counts)


if __name__ == "__main__":
    main()
