"""A time budget per message: one slow message never holds up the ones after it.

The router handles messages one after another (a few in a short time slice share a
transaction). Work still going on when its budget (``[server] message_time_budget``) runs
out is left to finish in its thread, logged, and the router goes on with the others; its
messages are not started a second time meanwhile. Python cannot stop
a thread, so the budget bounds the wait, not the work: intake's header limits bound that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

log = logging.getLogger(__name__)
Result = TypeVar("Result")


class TimeBudget:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.running: dict[int, asyncio.Future[object]] = {}

    async def run(self, message_ids: Sequence[int], work: Callable[[], Result]) -> Result | None:
        """Run *work* on *message_ids* in a thread; wait for it at most the budget and return
        its result, or None when it goes on. Its errors are raised to the caller while it is
        waited for, and logged once it is not."""
        if any(message_id in self.running for message_id in message_ids):
            return None
        future = asyncio.ensure_future(asyncio.to_thread(work))
        done, _ = await asyncio.wait({future}, timeout=self.seconds)
        if done:
            return future.result()
        names = ", ".join(map(str, message_ids))
        log.warning(
            "message %s: still being processed after %g s; going on with the others",
            names,
            self.seconds,
        )
        for message_id in message_ids:
            self.running[message_id] = future  # type: ignore[assignment]
        future.add_done_callback(partial(self._finished, message_ids, names))
        return None

    def _finished(
        self, message_ids: Sequence[int], names: str, future: asyncio.Future[object]
    ) -> None:
        for message_id in message_ids:
            self.running.pop(message_id, None)
        if not future.cancelled() and (error := future.exception()) is not None:
            log.warning("message %s (over its time budget): %s", names, error)
        else:
            log.info("message %s finished over its time budget", names)
