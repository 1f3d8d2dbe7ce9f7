"""Intake and routing benchmark: many small posts at once, as Postfix hands over its queue
after an outage, to an open list of two members.

    python bench/intake.py [--messages 3000] [--sessions 8] [--length 2000]
                           [--database sqlite,postgresql] [--dns-delay 0] [--no-postfix]
                           [--profile FILE]

Postfix's ``smtp-source`` sends the posts over ``--sessions`` parallel connections, one
message per connection; the C ``smtp-sink`` is the smarthost. For each target it prints
"accepted" (smtp-source done: every message answered 250, which listserv gives only after
the commit) and "end to end" (the sink has the last copy). The reference is a private
Postfix instance on the same machine (smtpd -> queue file, fsync -> relay to the same sink),
measured in the same run, so the ratios hold while the machine's load drifts.

``--dns-delay S`` makes the DNS server listserv asks (a stub on loopback) answer S seconds
late, as a slow resolver would.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from dnsstub import DnsStub  # noqa: E402
from fanout import (  # noqa: E402
    DOMAIN,
    SinkCounter,
    base_config,
    drop_schema,
    free_port,
    make_database,
    start_sink,
    wait_for_port,
)
from postfix_instance import PostfixInstance, available  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from listserv.config import load_config  # noqa: E402
from listserv.server import prepare  # noqa: E402
from listserv.store.lists import get_list  # noqa: E402
from listserv.store.models import InboxMessage, Member  # noqa: E402

SMTP_SOURCE = "/usr/sbin/smtp-source"
SENDER = "poster@example.com"


def write_config(path: Path, url: str, listen: int, sink: int, dns: str, workers: int = 0) -> None:
    path.write_text(
        base_config(url, listen, sink).replace("[server]\n", f"[server]\nworkers = {workers}\n")
        + f"""
[dns]
nameservers = ["{dns}"]

[[lists]]
name = "bench"
posting = "open"
max_posts_per_day = 0
max_posts_per_sender_per_day = 0
hold_command_like = false
""",
        encoding="utf-8",
    )


def add_members(config_path: Path) -> None:
    app = prepare(load_config(config_path))
    with app.sessions() as session, session.begin():
        list_id = get_list(session, "bench", DOMAIN).id
        for address in ("one@members.example", "two@members.example"):
            session.add(Member(list_id=list_id, address=address, delivery="regular"))
    app.engine.dispose()


def stored_posts(config_path: Path) -> int:
    app = prepare(load_config(config_path))
    with app.sessions() as session:
        count = session.scalar(select(func.count()).select_from(InboxMessage)) or 0
    app.engine.dispose()
    return count


class Run:
    """One target: a sink counting messages, the posts from smtp-source, the two times."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sink_port = free_port()
        self.sink = start_sink(self.sink_port)
        self.counter = SinkCounter(self.sink)
        wait_for_port(self.sink_port, self.sink, "smtp-sink")

    def post(self, port: int) -> tuple[float, float]:
        args = self.args
        command = [
            SMTP_SOURCE,
            *("-s", str(args.sessions), "-m", str(args.messages), "-l", str(args.length)),
            *("-f", SENDER, "-t", f"bench@{DOMAIN}", "-M", "client.example"),
            f"127.0.0.1:{port}",
        ]
        started = time.monotonic()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        accepted = time.monotonic() - started
        finished = self.counter.wait_for(args.messages, 900)
        if finished is None:
            sys.exit("the sink did not get every message within 15 minutes")
        return accepted, finished - started

    def close(self) -> None:
        self.sink.kill()
        self.sink.wait()


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time of process *pid*, and of its children still running (the worker processes)."""
    ticks = os.sysconf("SC_CLK_TCK")
    own = children = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / ticks
        if stat.parent.name == str(pid):
            own += seconds
        elif fields[1] == str(pid):
            children += seconds
    return own, children


def report(name: str, messages: int, accepted: float, end_to_end: float, note: str = "") -> None:
    print(
        f"  {name:<22} accepted {accepted:6.2f} s ({messages / accepted:5.0f}/s)   "
        f"end to end {end_to_end:6.2f} s ({messages / end_to_end:5.0f}/s){note}"
    )


def run_postfix(args: argparse.Namespace) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="listserv-bench-postfix-"))
    scratch.chmod(0o755)
    run = Run(args)
    listen = free_port()
    try:
        with PostfixInstance(scratch / "postfix", listen, run.sink_port, DOMAIN):
            wait_for_port(listen, run.sink, "postfix")
            report("Postfix", args.messages, *run.post(listen))
    finally:
        run.close()
        shutil.rmtree(scratch, ignore_errors=True)


def run_listserv(args: argparse.Namespace, database: str, dns: DnsStub) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="listserv-bench-intake-"))
    url, schema = make_database(database, scratch)
    run = Run(args)
    listen = free_port()
    config_path = scratch / "config.toml"
    write_config(config_path, url, listen, run.sink_port, dns.address, args.workers)
    server = None
    try:
        add_members(config_path)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
        listserv = ["-m", "listserv", "--config", str(config_path), "serve"]
        server = subprocess.Popen([sys.executable, *profile, *listserv], env=env)
        wait_for_port(listen, server, "listserv serve")
        accepted, end_to_end = run.post(listen)
        own, workers = (seconds / args.messages * 1000 for seconds in cpu_seconds(server.pid))
        stored = stored_posts(config_path)
        note = f"   CPU a post: serve {own:.1f} ms"
        if workers:
            note += f", workers {workers:.1f} ms"
        if stored != args.messages:
            note += f"  <-- {stored} stored"
        report(f"listserv, {database}", args.messages, accepted, end_to_end, note)
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
        run.close()
        drop_schema(schema)
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--length", type=int, default=2000)
    parser.add_argument("--database", default="sqlite,postgresql")
    parser.add_argument("--dns-delay", type=float, default=0.0)
    parser.add_argument("--no-postfix", action="store_true")
    parser.add_argument("--workers", type=int, default=0, help="[server] workers")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the server's main thread")
    args = parser.parse_args()
    if not Path(SMTP_SOURCE).exists():
        sys.exit(f"{SMTP_SOURCE} is missing: apt-get install postfix (the daemon need not run)")
    print(
        f"{args.messages} posts of {args.length} bytes over {args.sessions} sessions "
        f"to an open list of two members (DNS answers after {args.dns_delay} s):"
    )
    if not args.no_postfix:
        if available() and os.geteuid() == 0:
            run_postfix(args)
        else:
            print("  (no Postfix reference: needs /usr/sbin/postfix and root)")
    dns = DnsStub(delay=args.dns_delay).start()
    try:
        for database in args.database.split(","):
            run_listserv(args, database, dns)
    finally:
        dns.stop()


if __name__ == "__main__":
    main()
