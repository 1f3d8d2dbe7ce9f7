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
from dataclasses import dataclass
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


@dataclass
class Slot:
    """One worker process, as its parent keeps track of it."""

    process: BaseProcess
    poke: Connection
    started: float
    # Deaths in a row each soon after its start (a database that refuses it, a broken
    # config): its restarts are spaced out, not every second with a traceback each.
    quick_deaths: int = 0
    restart_at: float | None = None


# A worker that dies sooner than this after its start is started again after a growing pause.
SHORT_LIFE = 10.0
MAX_PAUSE = 60.0


class Workers:
    """The worker processes, seen from the serve process that takes mail."""

    def __init__(self, config: Config, log_format: LogFormat, main: WorkerMain) -> None:
        self.config = config
        self.log_format = log_format
        self.main = main
        self.intake_waiting: Flag = SPAWN.RawValue("b", 0)  # type: ignore[assignment]
        self.slots: list[Slot] = []
        self.stopping = False

    def start(self) -> None:
        self.slots = [self._spawn(index) for index in range(self.config.server.workers)]

    def _spawn(self, index: int, quick_deaths: int = 0) -> Slot:
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
        return Slot(process, ours, time.monotonic(), quick_deaths)

    def set(self) -> None:
        """Wake every worker: new mail was committed (stands in for an ``asyncio.Event``)."""
        for slot in self.slots:
            # A full pipe has wake-ups enough; a worker gone is started again by ``watch``.
            with contextlib.suppress(BlockingIOError, BrokenPipeError):
                os.write(slot.poke.fileno(), b"\0")

    async def watch(self, interval: float) -> None:
        """Start again any worker that stopped on its own, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            for index, slot in enumerate(self.slots):
                if not self.stopping and not slot.process.is_alive():
                    self._restart(index, slot)

    def _restart(self, index: int, slot: Slot) -> None:
        now = time.monotonic()
        if slot.restart_at is None:
            quick = now - slot.started < SHORT_LIFE
            slot.quick_deaths = slot.quick_deaths + 1 if quick else 0
            pause = min(MAX_PAUSE, 2.0 ** (slot.quick_deaths - 1)) if quick else 0.0
            slot.restart_at = now + pause
            log.warning(
                "worker %d (pid %s) stopped with exit code %s: starting it again%s",
                index + 1,
                slot.process.pid,
                slot.process.exitcode,
                f" in {pause:.0f} s" if pause else "",
            )
        if now >= slot.restart_at:
            slot.poke.close()
            self.slots[index] = self._spawn(index, slot.quick_deaths)

    async def stop(self, timeout: float) -> None:
        """SIGTERM to every worker; each finishes what it has under way and gives back its
        claims, up to *timeout* seconds, then is killed."""
        self.stopping = True
        for slot in self.slots:
            if slot.process.is_alive():
                slot.process.terminate()
        await asyncio.to_thread(self._join, timeout)
        for slot in self.slots:
            slot.poke.close()

    def _join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for process in (slot.process for slot in self.slots):
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
