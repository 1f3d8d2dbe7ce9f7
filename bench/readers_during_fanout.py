"""Portal readers during a fan-out (issue 13): does a busy portal slow delivery down?

    python bench/readers_during_fanout.py [--members 100000] [--readers 100] [--posts 2000]
        [--rounds 2] [--database sqlite|postgresql] [--web-nice N | --embedded]

Runs a real ``listserv serve`` and a real ``listserv web`` (uvicorn) on one database holding a
list of N members whose public archive has some thousands of generated posts (bench/archive.py),
with Postfix's C ``smtp-sink`` as the smarthost (bench/fanout.py). Posts one message at a time
and times it from the end of its DATA to the last message at the sink, alternately alone and
while R readers (asyncio, httpx, in a process of their own so they never hold up this one's
clock) request month, thread, message and search pages and the directory in a loop. Prints
every run, the medians and their ratio (issue 13's bound: 1.2), and the readers' request rate
and latency before and during the fan-out, and the CPU each process and the machine used.

``--web-nice N`` runs ``listserv web`` under ``nice -n N`` (contrib/systemd/listserv-web.service
gives the portal a lower CPU weight); ``--embedded`` has no ``listserv web``: the readers read
the portal ``serve`` runs itself when its config has a [web] section.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import math
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from archive import archive_paths, import_posts
from fanout import (
    BATCH,
    SinkCounter,
    add_members,
    free_port,
    make_database,
    send_post,
    start_listserv,
    start_sink,
    tear_down,
    wait_for_port,
    write_config,
)

from listserv.config import load_config
from listserv.server import prepare

KINDS = ("month", "thread", "message", "search", "directory")
# Readers read this long before the post goes out: their rate alone, and the web process warm.
READING_ALONE = 3.0
# Between runs: the server's bookkeeping after the last batch is done before the next post.
SETTLE = 2.0


@dataclass(frozen=True)
class Request:
    kind: str
    finished: float  # time.monotonic(), the same clock in every process on Linux
    milliseconds: float
    outcome: str  # the HTTP status, or the error that came instead


async def read_in_a_loop(
    client: httpx.AsyncClient,
    paths: dict[str, list[str]],
    reader: int,
    stop: Event,
    done: list[Request],
) -> None:
    """Reader number *reader*: each kind of page in turn (starting at one of its own), a
    page of that kind at random."""
    rng = random.Random(reader)
    for kind in itertools.islice(itertools.cycle(KINDS), reader % len(KINDS), None):
        if stop.is_set():
            return
        began = time.monotonic()
        try:
            outcome = str((await client.get(rng.choice(paths[kind]))).status_code)
        except httpx.HTTPError as error:
            outcome = type(error).__name__
        finished = time.monotonic()
        done.append(Request(kind, finished, (finished - began) * 1000, outcome))


def read_portal(
    base: str, paths: dict[str, list[str]], readers: int, stop: Event, report: Connection
) -> None:
    """The readers' process: *readers* concurrent loops over the pages until *stop*; sends
    "ready" once as many answers as readers have come, then every request made."""

    async def read() -> list[Request]:
        done: list[Request] = []
        limits = httpx.Limits(max_connections=readers, max_keepalive_connections=readers)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
            loops = [
                asyncio.create_task(read_in_a_loop(client, paths, i, stop, done))
                for i in range(readers)
            ]
            while len(done) < readers:
                await asyncio.sleep(0.05)
            report.send("ready")
            await asyncio.gather(*loops)
        return done

    report.send(asyncio.run(read()))


def summary(requests: list[Request], seconds: float) -> str:
    if len(requests) < 2:
        return f"{len(requests)} requests"
    times = [r.milliseconds for r in requests]
    failed = collections.Counter(r.outcome for r in requests if r.outcome != "200")
    return (
        f"{len(requests) / seconds:5.0f} req/s, p50 {statistics.median(times):6.0f} ms, "
        f"p95 {statistics.quantiles(times, n=20)[18]:6.0f} ms"
        + "".join(f", {count} {outcome}" for outcome, count in failed.items())
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime, stime in clock ticks


@dataclass(frozen=True)
class FanOut:
    started: float  # the end of the post's DATA
    finished: float  # the last message at the sink
    load: str  # the CPU used meanwhile, as printed

    @property
    def seconds(self) -> float:
        return self.finished - self.started


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy since boot (not idle or
    waiting for I/O): what this benchmark's processes and others' together had."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / 100


class Bench:
    """The processes, and one post timed with or without readers."""

    def __init__(self, args: argparse.Namespace, directory: Path, url: str) -> None:
        self.args = args
        self.smtp, self.http, sink_port = free_port(), free_port(), free_port()
        serve_config, web_config = directory / "serve.toml", directory / "web.toml"
        write_config(serve_config, url, self.smtp, sink_port, 4, 'archive = "public"\n')
        # Its own file: ``serve`` would run a portal of its own if it had a [web] section.
        web_config.write_text(
            serve_config.read_text()
            + f'\n[web]\nlisten = "127.0.0.1:{self.http}"\n'
            + f'secret_file = "{directory / "web.secret"}"\n'
        )
        started = time.monotonic()
        add_members(serve_config, args.members)
        app = prepare(load_config(serve_config))
        imported, _ = import_posts(app, "bench", args.posts)
        app.engine.dispose()
        print(
            f"{args.members:,} members, {imported:,} archived posts, {args.database}: "
            f"set up in {time.monotonic() - started:.0f} s"
        )
        self.paths = {**archive_paths("bench", args.posts), "directory": ["/"]}
        self.configs = serve_config, web_config
        self.sink_port = sink_port
        self.sink: subprocess.Popen | None = None
        self.servers: list[subprocess.Popen] = []
        self.posts = 0

    def start(self) -> None:
        self.sink = start_sink(self.sink_port)
        self.counter = SinkCounter(self.sink)
        wait_for_port(self.sink_port, self.sink, "smtp-sink")
        if self.args.embedded:
            # serve with a [web] section runs the portal itself, on its own event loop.
            self.serve = start_listserv(self.configs[1], "serve", self.smtp)
            self.servers.append(self.serve)
            wait_for_port(self.http, self.serve, "the portal of listserv serve")
            return
        self.serve = start_listserv(self.configs[0], "serve", self.smtp)
        self.servers.append(self.serve)
        self.web = start_listserv(self.configs[1], "web", self.http, self.args.web_nice)
        self.servers.append(self.web)

    def fan_out(self, watched: dict[str, int]) -> FanOut:
        """One post to every member, and the CPU the processes in *watched* (by name) and
        the whole machine used meanwhile."""
        cpu = {name: cpu_seconds(pid) for name, pid in watched.items()}
        busy = machine_busy_seconds()
        started, _ = send_post(self.smtp)
        self.posts += 1
        finished = self.counter.wait_for(self.posts * math.ceil(self.args.members / BATCH), 600)
        if finished is None:
            sys.exit("the sink did not get every message within 10 minutes")
        seconds = finished - started
        cores = (machine_busy_seconds() - busy) / seconds
        used = ", ".join(f"{n} {cpu_seconds(pid) - cpu[n]:4.2f}" for n, pid in watched.items())
        load = f"CPU s: {used}; cores busy {cores:4.2f} of {os.cpu_count()}"
        return FanOut(started, finished, load)

    def alone(self) -> float:
        run = self.fan_out({"serve": self.serve.pid})
        print(f"  alone        {run.seconds:6.2f} s   {run.load}")
        time.sleep(SETTLE)
        return run.seconds

    def with_readers(self) -> float:
        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        receiving, sending = context.Pipe(duplex=False)
        base = f"http://127.0.0.1:{self.http}"
        readers = context.Process(
            target=read_portal, args=(base, self.paths, self.args.readers, stop, sending)
        )
        readers.start()
        if not receiving.poll(300):
            sys.exit("the readers got no answers within 5 minutes")
        receiving.recv()
        reading = time.monotonic()
        time.sleep(READING_ALONE)
        assert readers.pid is not None
        portal = {} if self.args.embedded else {"web": self.web.pid}
        watched = {"serve": self.serve.pid, **portal, "readers": readers.pid}
        run = self.fan_out(watched)
        stop.set()
        if not receiving.poll(300):
            sys.exit("the readers did not stop within 5 minutes")
        requests: list[Request] = receiving.recv()
        readers.join()
        before = [r for r in requests if reading <= r.finished < run.started]
        during = [r for r in requests if run.started <= r.finished <= run.finished]
        print(
            f"  {self.args.readers} readers  {run.seconds:6.2f} s   {run.load}\n"
            f"      readers before the post  {summary(before, run.started - reading)}\n"
            f"      readers during fan-out   {summary(during, run.seconds)}"
        )
        for kind in KINDS:
            of_kind = [r for r in during if r.kind == kind]
            print(f"        {kind:<24} {summary(of_kind, run.seconds)}")
        time.sleep(SETTLE)
        return run.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--readers", type=int, default=100)
    parser.add_argument("--posts", type=int, default=2000, help="archived posts to read")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each kind, alternating")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--web-nice", type=int, default=0, help="run listserv web under nice")
    parser.add_argument(
        "--embedded", action="store_true", help="no listserv web: the portal of listserv serve"
    )
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="listserv-readers-"))
    url, schema = make_database(args.database, directory)
    bench = None
    try:
        bench = Bench(args, directory, url)
        bench.start()
        print("warm-up:")
        bench.alone()
        alone, with_readers = [], []
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}:")
            # A, B then B, A: a machine getting busier or quieter favours neither.
            if round_ % 2 == 0:
                alone.append(bench.alone())
                with_readers.append(bench.with_readers())
            else:
                with_readers.append(bench.with_readers())
                alone.append(bench.alone())
        base, loaded = statistics.median(alone), statistics.median(with_readers)
        print(
            f"end of DATA -> last message at the sink, median: alone {base:.2f} s, "
            f"with {args.readers} readers {loaded:.2f} s: ratio {loaded / base:.2f} "
            "(issue 13: at most 1.20)"
        )
    finally:
        servers, sink = (bench.servers, bench.sink) if bench else ([], None)
        tear_down(servers, sink, schema, directory)


if __name__ == "__main__":
    main()
