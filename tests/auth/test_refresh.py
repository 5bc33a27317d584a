"""``RefreshAhead`` on its own: a fetch the test answers by hand, an injected clock and jitter.

The sources built on it (AWS, Entra ID, Google) are tested against loopback fakes in
tests/auth and tests/providers; here are the parts they share: serving while refreshing,
one fetch at a time, the jittered back-off after a failed background refresh, cancel on close.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from modelmux.auth.refresh import RETRY_CAP, RefreshAhead
from modelmux.errors import UpstreamAuthFailed
from tests.upstream import on_loops, run


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Manual(RefreshAhead[str]):
    """Each fetch waits for the test to answer it with a token or an exception."""

    what = "test token"

    def __init__(self, clock: Clock, jitter: float = 0.0) -> None:
        super().__init__(label="t", margin=300.0, clock=clock, jitter=lambda: jitter)
        self.calls: list[asyncio.Future[tuple[str, float | None] | Exception]] = []
        self.cancelled = 0
        self.asked = asyncio.Event()

    async def _fetch(self) -> tuple[str, float | None]:
        answer = asyncio.get_running_loop().create_future()
        self.calls.append(answer)
        self.asked.set()
        try:
            outcome = await answer
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def next_call(self) -> asyncio.Future[tuple[str, float | None] | Exception]:
        await asyncio.wait_for(self.asked.wait(), 5)
        self.asked.clear()
        return self.calls[-1]

    def refreshing(self) -> bool:
        return self._inflight is not None

    async def settled(self) -> None:
        task = self._inflight
        assert task is not None
        await asyncio.wait([task], timeout=5)  # done callbacks run in order: _settled first


@on_loops
def test_one_fetch_for_many_callers_then_cached(loop: str) -> None:
    async def main() -> None:
        clock = Clock()
        source = Manual(clock)
        waiters = [asyncio.create_task(source.current()) for _ in range(20)]
        (await source.next_call()).set_result(("tok-1", clock.now + 3600))
        assert set(await asyncio.gather(*waiters)) == {"tok-1"}
        assert await source.current() == "tok-1"
        assert len(source.calls) == 1 and source.refreshes == 1

    run(loop, main())


def test_refresh_ahead_serves_the_held_token_meanwhile() -> None:
    async def main() -> None:
        clock = Clock()
        source = Manual(clock)
        first = asyncio.create_task(source.current())
        (await source.next_call()).set_result(("tok-1", clock.now + 3600))
        assert await first == "tok-1"
        clock.now += 3600 - 300 - 1
        assert await source.current() == "tok-1" and not source.refreshing()
        clock.now += 2  # inside the margin
        assert await source.current() == "tok-1"
        call = await source.next_call()
        assert await source.current() == "tok-1" and len(source.calls) == 2  # one in flight
        call.set_result(("tok-2", clock.now + 3600))
        await source.settled()
        assert await source.current() == "tok-2" and source.refreshes == 2

    run("asyncio", main())


def test_a_failed_background_refresh_backs_off_with_jitter(
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        clock = Clock()
        source = Manual(clock, jitter=0.5)  # factor 0.75 of the doubling delay
        first = asyncio.create_task(source.current())
        (await source.next_call()).set_result(("tok-1", clock.now + 3600))
        await first
        clock.now += 3400
        delays = []
        for attempt in range(1, 9):
            assert await source.current() == "tok-1"  # starts the refresh, serves the old
            (await source.next_call()).set_result(UpstreamAuthFailed("t: refused"))
            await source.settled()
            assert source.failures == attempt
            delay = min(RETRY_CAP, 2.0 ** (attempt - 1)) * 0.75
            clock.now += delay - 0.01
            assert await source.current() == "tok-1" and not source.refreshing()
            clock.now += 0.02
            delays.append(delay)
        assert delays[-1] == RETRY_CAP * 0.75
        assert await source.current() == "tok-1"
        (await source.next_call()).set_result(("tok-2", clock.now + 3600))
        await source.settled()
        assert source.failures == 0 and await source.current() == "tok-2"

    with caplog.at_level(logging.WARNING, logger="modelmux.auth"):
        run("asyncio", main())
    assert any(r.getMessage() == "t: test token refresh failed: t: refused"
               for r in caplog.records)


def test_without_a_held_token_each_request_fetches_and_sees_the_error() -> None:
    async def main() -> None:
        clock = Clock()
        source = Manual(clock)
        for _ in range(2):
            waiter = asyncio.create_task(source.current())
            (await source.next_call()).set_result(UpstreamAuthFailed("t: refused"))
            with pytest.raises(UpstreamAuthFailed):
                await waiter
        assert len(source.calls) == 2

    run("asyncio", main())


def test_an_expired_token_is_not_served_and_invalidate_spares_a_newer_one() -> None:
    async def main() -> None:
        clock = Clock()
        source = Manual(clock)
        first = asyncio.create_task(source.current())
        (await source.next_call()).set_result(("tok-1", clock.now + 60))
        await first
        clock.now += 61
        late = asyncio.create_task(source.current())
        (await source.next_call()).set_result(("tok-2", clock.now + 60))
        assert await late == "tok-2"
        assert not source.invalidate("tok-1") and await source.current() == "tok-2"
        assert source.invalidate("tok-2")
        again = asyncio.create_task(source.current())
        (await source.next_call()).set_result(("tok-3", None))
        assert await again == "tok-3"
        clock.now += 10**9  # no expiry: held for good, no refresh
        assert await source.current() == "tok-3" and not source.refreshing()

    run("asyncio", main())


def test_aclose_cancels_a_fetch_in_flight() -> None:
    async def main() -> None:
        source = Manual(Clock())
        waiter = asyncio.create_task(source.current())
        await source.next_call()
        await source.aclose()
        assert source.cancelled == 1 and source._inflight is None
        with pytest.raises(asyncio.CancelledError):
            await waiter

    run("asyncio", main())
