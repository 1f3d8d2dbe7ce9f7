"""``listserv serve``: intake, router and delivery workers in one process, or intake here and
the rest in worker processes (``[server] workers``, ``listserv/workers.py``).

SIGTERM (or SIGINT) stops intake from taking new connections, lets the SMTP sessions under
way finish, stops the workers and gives back whatever this process had claimed; mail that was
accepted stays in the database for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from multiprocessing.connection import Connection

from sqlalchemy import event

from listserv import logs
from listserv.app import App, make_app
from listserv.bounces.actions import delivery_failures
from listserv.bounces.upkeep import run_upkeep
from listserv.config import Config, host_port
from listserv.delivery.outbound import wake_after_commit, wake_delivery
from listserv.delivery.worker import run_delivery
from listserv.digests.issues import run_digests, wake_digests, wake_digests_after_commit
from listserv.housekeeping import run_housekeeping
from listserv.intake.committer import Flag
from listserv.intake.router import HANDLERS, RCPT_CHECKS, SITE_ROLES, run_router
from listserv.intake.smtp import Intake, IntakeHandler
from listserv.moderation.expiry import run_moderation_schedule
from listserv.store.claims import Watch, beat, register_instance, unregister_instance
from listserv.store.db import startup_lock, transaction, upgrade
from listserv.store.lists import save_list
from listserv.web.app import Web
from listserv.workers import Parent, Workers

log = logging.getLogger(__name__)
DRAIN_SECONDS = 30.0
# The portal run here renders its pages in threads that take turns for the interpreter lock
# with intake and delivery on this process's one event loop; every rendering thread is one
# more turn that mail waits for. With 100 readers a 100,000-member fan-out took 23 times as
# long at anyio's default of 40 threads, 3.3 to 4.5 times at 2 (bench/readers_during_fanout.py
# --embedded); a busy portal belongs in ``listserv web`` (README "Performance").
PORTAL_THREADS = 2


def prepare(config: Config) -> App:
    """Open the database, bring its schema up to date and declare the configured lists."""
    app = make_app(config)
    wire(app)
    with startup_lock(app.engine):
        upgrade(app.engine)
        with transaction(app.sessions) as session:
            for list_config in config.lists:
                save_list(session, list_config)
    return app


def wire(app: App) -> None:
    """Connect the stages that must not import each other: commits wake this process's
    delivery and digest workers, and refusals at delivery count like bounces."""
    for hook in (wake_after_commit, wake_digests_after_commit):
        if not event.contains(app.sessions, "after_commit", hook):
            event.listen(app.sessions, "after_commit", hook)
    app.on_refused = delivery_failures


class Server:
    """Everything ``serve`` runs, in one process; or, with worker processes, the part that
    takes mail (*workers* given) or the part that routes and delivers (*parent* given)."""

    def __init__(
        self, app: App, workers: Workers | None = None, parent: Parent | None = None
    ) -> None:
        self.app = app
        self.workers = workers
        self.parent = parent
        self.stopping = asyncio.Event()
        self.inbox = asyncio.Event()
        self.outbox = asyncio.Event()
        self.digests = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.intake: Intake | None = None
        self.delivery: asyncio.Task[None] | None = None
        self.instance_id = ""
        self.web: Web | None = None

    @property
    def poll(self) -> float:
        return min(1.0, self.app.config.server.heartbeat)

    async def start(self) -> None:
        wire(self.app)
        # Mail committed here wakes this process's workers, or the worker processes (posts
        # reach digests only in a worker: digests are theirs to wake).
        loop = asyncio.get_running_loop()
        wake_delivery.bind(loop, self.workers or self.outbox)
        wake_digests.bind(loop, self.digests)
        if self.parent is None:
            await self._take_mail()
        else:
            self.parent.listen([self.inbox, self.outbox], self.stopping)
        if self.workers is None:
            await self._route_and_deliver()
        else:
            self.workers.start()
            self.tasks.append(asyncio.create_task(self.workers.watch(self.poll)))
        if self.intake is not None:
            server = self.app.config.server
            address = listening_address(server.listen, self.intake.port)
            log.info("listening on %s (%s)", address, server.protocol)

    async def _take_mail(self) -> None:
        """Intake, and the portal when it is embedded."""
        roles = set(HANDLERS) | SITE_ROLES
        waiting_flag = None if self.workers is None else self.workers.intake_waiting
        on_stored = self.inbox.set if self.workers is None else self.workers.set
        handler = IntakeHandler(self.app, roles, on_stored, RCPT_CHECKS, waiting_flag)
        self.intake = Intake(self.app, handler)
        await self.intake.start()
        web = self.app.config.web
        if web is not None and web.embedded:
            self.web = Web(self.app, PORTAL_THREADS)
            self.tasks.append(self.web.start())
            log.info("portal on %s", listening_address(web.listen, self.web.port))

    async def _route_and_deliver(self) -> None:
        """The router, delivery, the heartbeat and the schedules."""
        self.instance_id = await asyncio.to_thread(register_instance, self.app.sessions)
        if self.parent is not None:
            intake_waiting = self.parent.waiting
        else:
            assert self.intake is not None
            intake_waiting = self.intake.handler.committer.waiting
        self.delivery = asyncio.create_task(
            run_delivery(self.app, self.instance_id, self.outbox, self.stopping, self.poll)
        )
        server = self.app.config.server
        self.tasks += [
            asyncio.create_task(
                run_router(self.app, self.instance_id, self.inbox, self.poll, intake_waiting)
            ),
            self.delivery,
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(run_moderation_schedule(self.app, server.moderation_interval)),
            asyncio.create_task(run_upkeep(self.app, server.bounce_upkeep_interval)),
            asyncio.create_task(run_digests(self.app, self.digests)),
            asyncio.create_task(run_housekeeping(self.app, server.housekeeping_interval)),
        ]

    async def _heartbeat(self) -> None:
        interval = self.app.config.server.heartbeat
        watch = Watch()
        while True:
            try:
                dead, _rejoined = await asyncio.to_thread(
                    beat, self.app.sessions, self.instance_id, interval, watch
                )
                if dead:
                    self.inbox.set()
                    self.outbox.set()
            except Exception:
                log.exception("heartbeat failed")
            await asyncio.sleep(interval)

    async def stop(self) -> None:
        if self.intake is not None:
            await self.intake.stop(DRAIN_SECONDS)
        if self.web is not None:
            await self.web.stop()
        if self.workers is not None:
            await self.workers.stop(DRAIN_SECONDS)
        # Delivery workers finish the transactions under way (so nothing is sent twice),
        # up to a limit; whatever is cut short is given back by ``unregister_instance``.
        self.stopping.set()
        self.outbox.set()
        if self.delivery is not None:
            await asyncio.wait([self.delivery], timeout=DRAIN_SECONDS)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        # Database work the cancelled tasks left running in threads (a claim, a message being
        # routed) ends before the claims are given back, or a late claim would outlive us.
        with contextlib.suppress(TimeoutError):
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.shutdown_default_executor(), DRAIN_SECONDS)
        if self.instance_id:
            unregister_instance(self.app.sessions, self.instance_id)
        self.app.engine.dispose()

    async def run_until_signalled(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        await self.stopping.wait()
        log.info("stopping")
        await self.stop()


def listening_address(listen: str, port: int) -> str:
    """``HOST:PORT`` as bound (port 0 in the config becomes the port we got)."""
    host, _ = host_port(listen, "listen")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# How long a thread may keep the interpreter's lock while another waits for it (Python's
# default is 5 ms). The router and delivery threads run Python for long stretches; intake's
# event loop needs the lock for a moment at each SMTP command, and waited that long each time.
SWITCH_INTERVAL = 0.0005


def run_server(config: Config, log_format: logs.LogFormat = "text") -> None:
    app = prepare(config)
    sys.setswitchinterval(SWITCH_INTERVAL)
    workers = Workers(config, log_format, run_worker) if config.server.workers else None
    asyncio.run(Server(app, workers).run_until_signalled())


def run_worker(
    config: Config, log_format: logs.LogFormat, pokes: Connection, intake_waiting: Flag
) -> None:
    """A worker process's life: routing and delivery until SIGTERM or its parent is gone."""
    logs.configure(config.server.log_level, log_format)
    parent = Parent(pokes, intake_waiting)
    app = make_app(config, parent.waiting)
    sys.setswitchinterval(SWITCH_INTERVAL)
    asyncio.run(Server(app, parent=parent).run_until_signalled())
