"""Bounds on non-streamed upstream bodies: a declared length over the limit is refused unread,
and one process-wide budget bounds what all reads buffer together, released on every path."""

from __future__ import annotations

import asyncio
import platform
import sys

import pytest

from modelmux.upstream import ConnectionPool, UpstreamClosed, UpstreamProtocolError
from modelmux.upstream.budget import BodyBudget, UpstreamBufferFull, malloc_trimmer
from tests.fakes.h2 import H2Fake
from tests.fakes.http import FakeServer, Reply, Request
from tests.fakes.trickle import DECLARED, Trickler
from tests.upstream import HTTPServer, on_loops, run, until
from tests.upstream import Reply as RawReply


@on_loops
def test_declared_length_over_the_limit_is_refused_unread(loop: str) -> None:
    async def main() -> None:
        async with Trickler() as up, ConnectionPool() as pool:
            resp = await pool.request(b"POST", up.origin + "/v1/chat/completions", [], b"{}")
            with pytest.raises(UpstreamProtocolError) as info:
                await resp.read()
            assert info.value.code == "upstream_response_too_large"
            assert str(DECLARED) in info.value.message
            assert resp.is_closed and pool.stats() == {}  # closed, not pooled
            async with asyncio.timeout(5.0):
                while up.hung_up + up.gave_up == 0:
                    up.done.clear()
                    await up.done.wait()
            assert (up.hung_up, up.gave_up) == (1, 0)
            assert up.sent < up.limit  # it saw the close long before its trickle ran out

    run(loop, main())


class _Declaring(FakeServer):
    """Answers with a head declaring 2 GiB and one DATA frame, then holds until reset."""

    async def handle(self, request: Request) -> Reply:
        return Reply(headers=[("content-length", str(DECLARED))], events=[b"{", b"}"], hold_after=1)


def test_h2_declared_length_over_the_limit_resets_the_stream() -> None:
    async def main() -> None:
        async with H2Fake(_Declaring()) as up, ConnectionPool() as pool:
            resp = await pool.request(b"POST", up.base_url + "/v1/chat/completions", [], b"{}",
                                      http2=True)
            with pytest.raises(UpstreamProtocolError) as info:
                await resp.read()
            assert info.value.code == "upstream_response_too_large"
            await up.wait_for(lambda: up.resets == 1)

    run("asyncio", main())


def test_declared_length_within_the_limit_is_read() -> None:
    async def main() -> None:
        async with HTTPServer(default=RawReply(body=b"z" * 1000)) as server:
            async with ConnectionPool() as pool:
                resp = await pool.request(b"GET", server.url(), [])
                assert await resp.read(max_bytes=1000) == b"z" * 1000
                assert pool.budget.in_use == 0

    run("asyncio", main())


@on_loops
def test_budget_bounds_concurrent_answers_and_is_released_on_error(loop: str) -> None:
    async def main() -> None:
        budget = BodyBudget(2500)
        reply = RawReply(body=b"x" * 1000, fault="stall_body")  # half, then a close on proceed
        async with HTTPServer(default=reply) as server, ConnectionPool(budget=budget) as pool:
            first = [await pool.request(b"GET", server.url(), []) for _ in range(2)]
            reads = [asyncio.ensure_future(r.read()) for r in first]
            await until(lambda: budget.in_use == 2000)  # both hold their declared length
            third = await pool.request(b"GET", server.url(), [])
            with pytest.raises(UpstreamBufferFull) as info:
                await third.read()
            error = info.value
            assert (error.status, error.type, error.code) == (503, "server_error",
                                                              "upstream_buffer_full")
            assert error.headers == [(b"retry-after", b"1")] and third.is_closed
            assert budget.in_use == 2000
            server.proceed.set()  # the two held bodies end short: an error path
            for outcome in await asyncio.gather(*reads, return_exceptions=True):
                assert isinstance(outcome, UpstreamClosed)
            assert budget.in_use == 0

    run(loop, main())


def test_budget_counts_an_undeclared_body_as_it_grows() -> None:
    async def main() -> None:
        budget = BodyBudget(2500)
        reply = RawReply(body=b"x" * 1000, repeat=3, chunked=True)
        async with HTTPServer(default=reply) as server, ConnectionPool(budget=budget) as pool:
            resp = await pool.request(b"GET", server.url(), [])
            with pytest.raises(UpstreamBufferFull):
                await resp.read()
            assert budget.in_use == 0 and resp.is_closed
            budget.limit = 3000
            resp = await pool.request(b"GET", server.url(), [])
            assert await resp.read() == b"x" * 3000
            assert budget.in_use == 0

    run("asyncio", main())


@on_loops
def test_budget_is_released_when_the_read_is_cancelled(loop: str) -> None:
    async def main() -> None:
        budget = BodyBudget(10_000)
        reply = RawReply(body=b"x" * 1000, fault="stall_body")
        async with HTTPServer(default=reply) as server, ConnectionPool(budget=budget) as pool:
            resp = await pool.request(b"GET", server.url(), [])
            task = asyncio.ensure_future(resp.read())
            await until(lambda: budget.in_use == 1000)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert budget.in_use == 0 and resp.is_closed

    run(loop, main())


def test_large_answers_reclaim_memory_at_most_once_per_interval() -> None:
    async def main() -> None:
        reclaims: list[int] = []
        budget = BodyBudget(10_000, reclaim=lambda: reclaims.append(1), large=1000,
                            interval=3600.0)
        small = RawReply(body=b"x" * 999)
        async with HTTPServer(default=small) as server, ConnectionPool(budget=budget) as pool:
            for _ in range(3):
                resp = await pool.request(b"GET", server.url(), [])
                await resp.read()
            server.default = RawReply(body=b"x" * 1000)
            for _ in range(4):
                resp = await pool.request(b"GET", server.url(), [])
                await resp.read()
            passed = asyncio.Event()  # due after any reclaim scheduled without a wait
            asyncio.get_running_loop().call_later(0, passed.set)
            await passed.wait()
            await asyncio.sleep(0)
            assert reclaims == [1]  # small answers none, large ones one until the interval ends

    run("asyncio", main())


def test_malloc_trimmer_is_callable_where_glibc_has_it() -> None:
    glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    trim = malloc_trimmer()
    assert (trim is not None) == glibc
    if trim is not None:
        trim()
