"""Worker processes: with ``[server] workers = N``, the ``serve`` process only takes mail (and
serves the portal), and N processes it starts route and deliver it, as Postfix's smtpd hands
its queue to processes of their own. Each is a Python interpreter with its own lock, so intake
and routing no longer take turns on one core.

The serve process wakes the workers when it commits mail, one byte down a pipe to each (a
full pipe already says "look"), and tells them through shared memory while intake has
messages to commit: a worker's routing transaction then ends early, as SQLite lets one writer
in at a time. A worker whose pipe closes (the serve process is gone, even by kill -9) stops as
on SIGTERM, giving back what it claimed; a worker that dies is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from listserv.config import Config
from listserv.intake.committer import Flag
from listserv.logs import LogFormat

log = logging.getLogger(__name__)
# A fork would copy whatever locks this process's threads hold at that moment.
SPAWN = multiprocessing.get_context("spawn")
# The entry point of a worker: (configuration, log format, its end of the pipe, the flag).
WorkerMain = Callable[[Config, LogFormat, Connection, Flag], None]


class Workers:
    """The worker processes, seen from the serve process that takes mail."""

    def __init__(self, config: Config, log_format: LogFormat, main: WorkerMain) -> None:
        self.config = config
        self.log_format = log_format
        self.main = main
        self.intake_waiting: Flag = SPAWN.RawValue("b", 0)  # type: ignore[assignment]
        self.processes: list[BaseProcess] = []
        self.pokes: list[Connection] = []
        self.stopping = False

    def start(self) -> None:
        for index in range(self.config.server.workers):
            process, poke = self._spawn(index)
            self.processes.append(process)
            self.pokes.append(poke)

    def _spawn(self, index: int) -> tuple[BaseProcess, Connection]:
        theirs, ours = SPAWN.Pipe(duplex=False)
        process = SPAWN.Process(
            target=self.main,
            args=(self.config, self.log_format, theirs, self.intake_waiting),
            name=f"listserv-worker-{index + 1}",
        )
        process.start()
        theirs.close()
        os.set_blocking(ours.fileno(), False)
        log.info("worker %d started (pid %s)", index + 1, process.pid)
        return process, ours

    def set(self) -> None:
        """Wake every worker: new mail was committed (stands in for an ``asyncio.Event``)."""
        for poke in self.pokes:
            # A full pipe has wake-ups enough; a worker gone is started again by ``watch``.
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(poke.fileno(), b"\0")

    async def watch(self, interval: float) -> None:
        """Start again any worker that stopped on its own, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            for index, process in enumerate(self.processes):
                if self.stopping or process.is_alive():
                    continue
                log.warning(
                    "worker %d (pid %s) stopped with exit code %s: starting it again",
                    index + 1,
                    process.pid,
                    process.exitcode,
                )
                self.pokes[index].close()
                self.processes[index], self.pokes[index] = self._spawn(index)

    async def stop(self, timeout: float) -> None:
        """SIGTERM to every worker; each finishes what it has under way and gives back its
        claims, up to *timeout* seconds, then is killed."""
        self.stopping = True
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        await asyncio.to_thread(self._join, timeout)
        for poke in self.pokes:
            poke.close()

    def _join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker pid %s did not stop in %.0f s: killed", process.pid, timeout)
                process.kill()
                process.join()


class Parent:
    """The serve process that takes mail, seen from one of its workers."""

    def __init__(self, pokes: Connection, intake_waiting: Flag) -> None:
        self.pokes = pokes
        self.intake_waiting = intake_waiting

    def waiting(self) -> bool:
        """True while intake has messages to commit."""
        return bool(self.intake_waiting.value)

    def listen(self, wake: list[asyncio.Event], gone: asyncio.Event) -> None:
        """Set the *wake* events at each poke, and *gone* when the serve process is gone."""
        loop = asyncio.get_running_loop()
        fd = self.pokes.fileno()
        os.set_blocking(fd, False)

        def poked(*_: Any) -> None:
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                return
            if data:
                for event in wake:
                    event.set()
                return
            loop.remove_reader(fd)
            log.warning("the serve process that takes mail is gone: stopping")
            gone.set()

        loop.add_reader(fd, poked)
