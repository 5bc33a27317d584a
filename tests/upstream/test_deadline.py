"""WaitTimer: one loop timer serving a sequence of waits, each with its own deadline."""

from __future__ import annotations

import asyncio

from modelmux.upstream.deadline import WaitTimer
from tests.upstream import on_loops, run


@on_loops
def test_a_later_deadline_re_arms_instead_of_expiring_early(loop: str) -> None:
    """The first wait ends before its deadline; the next one's deadline is later than the
    armed timer, which fires, re-arms, and expires only at the later deadline."""
    async def main() -> None:
        fired: list[float] = []
        expired = asyncio.Event()
        now = asyncio.get_running_loop().time

        def expire() -> None:
            fired.append(now())
            expired.set()

        timer = WaitTimer(expire)
        start = now()
        timer.start(start + 0.1)  # a wait that ends in time: no loop turn before finish()
        timer.finish()
        timer.start(start + 0.25)  # the next wait: the pending timer (0.1) is too early
        await asyncio.wait_for(expired.wait(), 5)
        # never before the later deadline (uvloop's clock may read up to 1 ms early)
        assert len(fired) == 1 and fired[0] >= start + 0.25 - 0.002

    run(loop, main())


@on_loops
def test_a_finished_wait_never_expires_and_stop_cancels(loop: str) -> None:
    async def main() -> None:
        fired: list[str] = []
        timer = WaitTimer(lambda: fired.append("x"))
        at = asyncio.get_running_loop().time()
        timer.start(at + 0.05)
        timer.finish()
        await asyncio.sleep(0.1)
        timer.start(at + 0.15)
        timer.stop()
        await asyncio.sleep(0.1)
        timer.start(None)  # no limit: nothing is armed
        await asyncio.sleep(0.05)
        assert fired == []

    run(loop, main())
