"""A time budget per message: one slow message never holds up the ones after it.

The router handles messages one after another. A message still being handled when its budget
(``[server] message_time_budget``) runs out is left to finish in its thread, logged, and the
router goes on with the others; it is not started a second time meanwhile. Python cannot stop
a thread, so the budget bounds the wait, not the work: intake's header limits bound that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial

log = logging.getLogger(__name__)


class TimeBudget:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.running: dict[int, asyncio.Future[str]] = {}

    async def run(self, message_id: int, work: Callable[[], str]) -> None:
        """Run *work* in a thread; wait for it at most the budget. Its errors are raised to
        the caller while it is waited for, and logged once it is not."""
        if message_id in self.running:
            return
        future = asyncio.ensure_future(asyncio.to_thread(work))
        done, _ = await asyncio.wait({future}, timeout=self.seconds)
        if done:
            future.result()
            return
        log.warning(
            "message %s: still being processed after %g s; going on with the others",
            message_id,
            self.seconds,
        )
        self.running[message_id] = future
        future.add_done_callback(partial(self._finished, message_id))

    def _finished(self, message_id: int, future: asyncio.Future[str]) -> None:
        self.running.pop(message_id, None)
        if not future.cancelled() and (error := future.exception()) is not None:
            log.warning("message %s (over its time budget): %s", message_id, error)
        else:
            log.info("message %s finished over its time budget", message_id)
