"""``listserv web``: the portal alone, on ``[web] listen``, until SIGTERM or SIGINT (more
portal processes, on more hosts, against the same database). Mail the portal writes
(sign-in links, confirmations, notices) waits in the outbound queue for a ``serve``."""

from __future__ import annotations

import asyncio
import logging
import signal

from listserv.app import App
from listserv.web.app import Web

log = logging.getLogger(__name__)


async def run_portal_alone(app: App) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    web = Web(app)
    task = web.start()
    log.info("portal on port %d", web.port)
    try:
        await asyncio.wait(
            {task, asyncio.create_task(stopping.wait())}, return_when="FIRST_COMPLETED"
        )
    finally:
        await web.stop()
