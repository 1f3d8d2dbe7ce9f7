"""The router's time budget per message, with real threads: a message still being handled
when its budget runs out is left to finish while the others go on."""

from __future__ import annotations

import asyncio
import threading

import pytest

from listserv.intake.budget import TimeBudget


def test_a_slow_message_is_left_to_finish_and_not_started_twice() -> None:
    release = threading.Event()
    started: list[int] = []

    def slow() -> str:
        started.append(1)
        release.wait(10)
        return "done"

    async def scenario() -> None:
        budget = TimeBudget(0.05)
        await budget.run([1], slow)  # returns at the budget, the work still under way
        assert set(budget.running) == {1} and not release.is_set()
        await budget.run([1], slow)  # claimed again meanwhile: not started a second time
        await budget.run([2], lambda: "quick")  # the next message is handled at once
        assert started == [1]
        release.set()
        # The budget's own done callback was registered first, so it has run by the time
        # this wait, registered after it, returns.
        await asyncio.wait_for(asyncio.shield(budget.running[1]), 5)
        assert budget.running == {}

    asyncio.run(scenario())


def test_errors_within_the_budget_reach_the_router() -> None:
    def broken() -> str:
        raise OSError("database gone")

    with pytest.raises(OSError, match="database gone"):
        asyncio.run(TimeBudget(5).run([1], broken))
