"""Scale run of issue 10: one post to a list of N members (1,000,000 by default) on
PostgreSQL, three ``serve`` processes sharing the database, one of them killed with -9 in
the middle of the fan-out. Prints how long until the C ``smtp-sink`` had every batch, how many
RCPTs it saw, how many distinct (every member at least once), how many twice (batches in
flight at the kill, sent again after three heartbeats) and each process's peak RSS.

    python bench/takeover.py [N] [--kill-after FRACTION]
"""

from __future__ import annotations

import argparse
import math
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import (
    BATCH,
    DOMAIN,
    SinkCounter,
    add_members,
    free_port,
    make_database,
    member_address,
    peak_rss_mb,
    post,
    start_listserv,
    start_sink,
    tear_down,
    wait_for_port,
    write_config,
)

PROCESSES = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("members", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--kill-after", type=float, default=0.3, metavar="FRACTION")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="listserv-takeover-"))
    dump_dir = Path(tempfile.mkdtemp(prefix="listserv-sink-", dir="/dev/shm"))
    dump_dir.chmod(0o777)
    dump = dump_dir / "dump"
    url, schema = make_database("postgresql", directory)
    sink_port = free_port()
    ports = [free_port() for _ in range(PROCESSES)]
    configs = []
    for i, port in enumerate(ports):
        path = directory / f"config{i}.toml"
        write_config(path, url, port, sink_port, 4)
        # A short heartbeat: the killed process's batches are taken over after 3 s.
        text = path.read_text().replace(
            'log_level = "warning"', 'log_level = "warning"\nheartbeat = 1'
        )
        path.write_text(text)
        configs.append(path)
    sink = None
    servers: list[subprocess.Popen] = []
    try:
        started = time.monotonic()
        add_members(configs[0], args.members)
        print(f"{args.members} members added in {time.monotonic() - started:.0f} s")
        batches = math.ceil(args.members / BATCH)
        sink = start_sink(sink_port, dump)
        counter = SinkCounter(sink)
        wait_for_port(sink_port, sink, "smtp-sink")
        for config, port in zip(configs, ports, strict=True):
            servers.append(start_listserv(config, "serve", port))
        with smtplib.SMTP("127.0.0.1", ports[0]) as client:
            started = time.monotonic()
            client.sendmail(member_address(0), f"bench@{DOMAIN}", post(ports[0]))
        if counter.wait_for(max(1, int(batches * args.kill_after)), 600) is None:
            sys.exit("the fan-out did not get going")
        killed_rss = peak_rss_mb(servers[1].pid)
        servers[1].send_signal(signal.SIGKILL)
        killed_at = time.monotonic() - started
        print(f"killed process 2 with -9 after {killed_at:.1f} s")
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            rcpts = dump.read_bytes().count(b"X-Rcpt-Args: ") if dump.exists() else 0
            if rcpts >= args.members:
                break
            time.sleep(1)
        seconds = time.monotonic() - started
        lines = [x for x in dump.read_bytes().splitlines() if x.startswith(b"X-Rcpt-Args: ")]
        distinct = len(set(lines))
        print(f"end of DATA -> every member at the sink: {seconds:.1f} s (±1 s)")
        print(
            f"RCPTs {len(lines)}, distinct {distinct} of {args.members}, "
            f"sent twice {len(lines) - distinct}"
        )
        peaks = [killed_rss if i == 1 else peak_rss_mb(s.pid) for i, s in enumerate(servers)]
        print("peak RSS of the three processes: " + ", ".join(f"{mb:.0f} MB" for mb in peaks))
    finally:
        tear_down(servers, sink, schema, directory, dump_dir)


if __name__ == "__main__":
    main()
