"""``RedisLimits`` against a real redis-server: atomic buckets and slots, TTLs, NOSCRIPT,
leases that lapse when their holder dies, and the local fallback during an outage."""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Coroutine
from typing import Any

import pytest

from modelmux.config.providers import MockProviderConfig
from modelmux.config.state import StateConfig
from modelmux.providers.mock import MockProvider
from modelmux.routing.memory import MemoryLimits
from modelmux.routing.models import DeploymentSpec
from modelmux.routing.store import Lease
from modelmux.state.build import build_limits
from modelmux.state.redis import RedisLimits
from tests.state.redis_server import RedisServer
from tests.upstream import run

P = MockProvider(MockProviderConfig(name="p", models=["m"]))


_opened: list[Any] = []  # what the running test opened: closed by run_closing


def store(server: RedisServer, workers: int = 1, **options: Any) -> RedisLimits:
    limits = build_limits(StateConfig(backend="redis", url=server.url, **options), workers)
    assert isinstance(limits, RedisLimits)
    _opened.append(limits)
    return limits


async def inspect(server: RedisServer) -> Any:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(server.url)
    _opened.append(client)
    return client


def run_closing(main: Coroutine[Any, Any, None]) -> None:
    """Run a test's body, then close every store and client it opened, in its own loop, even
    when an assertion failed: a failed test must not leak sockets into the tests after it."""

    async def guarded() -> None:
        try:
            await main
        finally:
            while _opened:
                await _opened.pop().aclose()  # closing an already closed one is harmless

    run("asyncio", guarded())


def test_rpm_is_global_not_split_by_workers_and_keys_carry_ttls(
        redis_server: RedisServer) -> None:
    spec = DeploymentSpec(P, "m", rpm=5, tpm=1000, max_concurrent=3)

    async def main() -> None:
        a, b = store(redis_server, workers=4), store(redis_server, workers=4)
        started = time.monotonic()
        got = [await (a if i % 2 else b).acquire(spec, 10) for i in range(8)]
        leases = [g for g in got if isinstance(g, Lease)]
        assert len(leases) == 3  # max_concurrent = 3 in all, not 3 // 4 per process
        assert all(not lease.local for lease in leases)
        assert all(g == pytest.approx(0.05) for g in got if not isinstance(g, Lease))
        for lease in leases:
            a.settle(lease, 4)  # any process may settle: the lease names its slot
        await a.settled()
        more = [await a.acquire(spec, 10) for _ in range(3)]
        assert sum(isinstance(g, Lease) for g in more) == 2  # rpm 5: 3 + 2, then a wait
        assert not isinstance(more[2], Lease) and 0 < more[2] <= 12.5
        client = await inspect(redis_server)
        keys = sorted(k.decode() for k in await client.keys("*"))
        assert keys == ["modelmux:{p/m}:rpm", "modelmux:{p/m}:slots", "modelmux:{p/m}:tpm"]
        for key in keys:
            assert 0 < await client.pttl(key) <= 61_000, key
        assert await client.zcard("modelmux:{p/m}:slots") == 2
        tpm_left = float(await client.hget("modelmux:{p/m}:tpm", "t"))
        refilled = (time.monotonic() - started) * 1000 / 60  # tpm 1000 refills as time passes
        assert 1000 - 3 * 4 - 2 * 10 - 1 <= tpm_left <= 1000 - 3 * 4 - 2 * 10 + refilled + 1
        for store_ in (a, b):
            assert store_.status().up and store_.status().local_decisions == 0

    run_closing(main())


def test_a_request_over_the_tpm_capacity_can_never_fit(redis_server: RedisServer) -> None:
    async def main() -> None:
        a = store(redis_server)
        assert await a.acquire(DeploymentSpec(P, "m", tpm=100), 101) == math.inf

    run_closing(main())


def test_noscript_after_script_flush_recovers_and_only_a_loss_reads_as_one(
        redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    spec = DeploymentSpec(P, "m", rpm=100, max_concurrent=5)

    def lost() -> int:
        return sum("lost its script cache" in r.getMessage() for r in caplog.records)

    async def main() -> None:
        a = store(redis_server)
        with caplog.at_level(logging.DEBUG, logger="modelmux.state"):
            lease = await a.acquire(spec, 1)  # a fresh server: every script is sent once
            assert isinstance(lease, Lease)
            a.settle(lease, 1)
            await a.settled()
            assert lost() == 0
        client = await inspect(redis_server)
        await client.script_flush()
        assert await client.script_exists(a.key("x", "y")) == [False]
        with caplog.at_level(logging.INFO, logger="modelmux.state"):
            assert isinstance(await a.acquire(spec, 1), Lease)
        assert lost() == 1
        assert a.status().up and a.status().outages == 0

    run_closing(main())


def test_a_slot_is_renewed_while_held_and_lapses_when_its_holder_dies(
        redis_server: RedisServer) -> None:
    spec = DeploymentSpec(P, "m", max_concurrent=1)

    async def main() -> None:
        import asyncio

        holder, other = store(redis_server, lease_ms=300), store(redis_server, lease_ms=300)
        lease = await holder.acquire(spec, 1)
        assert isinstance(lease, Lease)
        for _ in range(6):  # twice the lease: renewals keep the slot taken
            await asyncio.sleep(0.1)
            assert not isinstance(await other.acquire(spec, 1), Lease)
        await holder.aclose()  # the holder "dies": no release, no more renewals
        for _ in range(100):  # bounded: the lease lapses after about 300 ms
            got = await other.acquire(spec, 1)
            if isinstance(got, Lease):
                break
            await asyncio.sleep(0.02)
        assert isinstance(got, Lease)
        other.settle(got, 0)

    run_closing(main())


def test_redis_down_falls_back_to_the_local_share_logs_once_and_recovers(
        redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    spec = DeploymentSpec(P, "m", rpm=4)

    async def main() -> None:
        import asyncio

        a = store(redis_server, workers=2, timeout_ms=200, retry_ms=50)
        assert isinstance(await a.acquire(spec, 1), Lease)
        redis_server.stop()
        got = [await a.acquire(spec, 1) for _ in range(4)]
        assert [isinstance(g, Lease) and g.local for g in got] == [True, True, False, False]
        status = a.status()
        assert (status.up, status.outages, status.local_decisions) == (False, 1, 4)
        for lease in got:
            if isinstance(lease, Lease):
                a.settle(lease, 1)
        redis_server.start()  # empty again: a full bucket
        for _ in range(100):  # bounded: Redis is asked again after retry_ms
            got_back = await a.acquire(spec, 1)
            if a.status().up:
                break
            await asyncio.sleep(0.02)
        assert isinstance(got_back, Lease) and not got_back.local
        assert a.status().outages == 1

    with caplog.at_level(logging.WARNING, "modelmux.state"):
        run_closing(main())
    lines = [r.getMessage() for r in caplog.records if r.name == "modelmux.state"]
    assert sum("unreachable" in line for line in lines) == 1, lines
    assert sum("shared once more" in line for line in lines) == 1, lines


def test_memory_store_is_per_process_and_split_by_workers() -> None:
    spec = DeploymentSpec(P, "m", rpm=4)
    limits = build_limits(StateConfig(), 2)
    assert isinstance(limits, MemoryLimits)
    got = [limits.try_acquire(spec, 1) for _ in range(3)]
    assert [isinstance(g, Lease) for g in got] == [True, True, False]
    assert limits.status().backend == "memory" and limits.status().up


def test_a_redis_that_hangs_costs_one_bounded_timeout_then_local_decisions(
        redis_server: RedisServer) -> None:
    spec = DeploymentSpec(P, "m", rpm=10)

    async def main() -> None:
        import asyncio

        a = store(redis_server, timeout_ms=200, retry_ms=60_000)
        assert isinstance(await a.acquire(spec, 1), Lease)
        assert redis_server.proc is not None
        redis_server.proc.send_signal(signal.SIGSTOP)  # accepts nothing, answers nothing
        try:
            got = await asyncio.wait_for(a.acquire(spec, 1), 5)  # bounded by timeout_ms
            assert isinstance(got, Lease) and got.local
            assert not a.status().up
            again = await asyncio.wait_for(a.acquire(spec, 1), 1)  # no new wait: local now
            assert isinstance(again, Lease) and again.local
        finally:
            redis_server.proc.send_signal(signal.SIGCONT)

    run_closing(main())
