"""The pool against a loopback server: reuse, limits and FIFO waiters, eviction, cancellation.

Each I/O test runs on asyncio and on uvloop and checks ``stats()`` so no connection leaks.
"""

from __future__ import annotations

import asyncio

import pytest

from modelmux.upstream import (
    ConnectionPool,
    Origin,
    Response,
    Timeouts,
    UpstreamConnectError,
    UpstreamTimeout,
    parse_url,
)
from modelmux.upstream.connection import HTTP11Connection
from modelmux.upstream.origin_pool import OriginPool
from modelmux.upstream.prepare import request_headers
from tests.upstream import HTTPServer, Reply, on_loops, refused_port, run, until


def _stats(pool: ConnectionPool, server: HTTPServer) -> dict[str, int]:
    empty = {"total": 0, "idle": 0, "in_use": 0, "waiters": 0}
    return pool.stats().get(f"http://127.0.0.1:{server.port}", empty)


@on_loops
def test_kept_alive_connection_is_reused(loop: str) -> None:
    async def main() -> None:
        async with HTTPServer() as server, ConnectionPool() as pool:
            for _ in range(3):
                assert await (await pool.request(b"GET", server.url(), [])).read() == b"hello"
            assert _stats(pool, server) == {"total": 1, "idle": 1, "in_use": 0, "waiters": 0}
        assert len(server.ports) == 1
        assert {seen.port for seen in server.requests} == set(server.ports)

    run(loop, main())


@on_loops
def test_connection_close_is_not_reused(loop: str) -> None:
    async def main() -> None:
        async with HTTPServer(default=Reply(close=True)) as server, ConnectionPool() as pool:
            for _ in range(2):
                assert await (await pool.request(b"GET", server.url(), [])).read() == b"hello"
                assert pool.stats() == {}
        assert len({seen.port for seen in server.requests}) == 2

    run(loop, main())


@on_loops
def test_idle_connection_closed_by_the_server_is_dropped(loop: str) -> None:
    async def main() -> None:
        async with HTTPServer(default=Reply(hang_up=True)) as server, ConnectionPool() as pool:
            for _ in range(2):
                assert await (await pool.request(b"GET", server.url(), [])).read() == b"hello"
                await until(lambda: _stats(pool, server)["total"] == 0)
        assert len(set(server.ports)) == 2

    run(loop, main())


@on_loops
def test_limit_queues_waiters_first_in_first_out(loop: str) -> None:
    async def main() -> None:
        async with HTTPServer() as server, ConnectionPool(max_connections_per_origin=2) as pool:
            first = await pool.request(b"GET", server.url(), [])
            second = await pool.request(b"GET", server.url(), [])
            third = asyncio.create_task(pool.request(b"GET", server.url("/3"), []))
            fourth = asyncio.create_task(pool.request(b"GET", server.url("/4"), []))
            await until(lambda: _stats(pool, server)["waiters"] == 2)
            assert _stats(pool, server) == {"total": 2, "idle": 0, "in_use": 2, "waiters": 2}

            await first.read()  # hands its connection to the oldest waiter
            got_third = await third
            assert not fourth.done() and _stats(pool, server)["waiters"] == 1
            await second.read()
            got_fourth = await fourth
            await got_third.read()
            await got_fourth.read()
            assert _stats(pool, server) == {"total": 2, "idle": 2, "in_use": 0, "waiters": 0}
        assert len(server.ports) == 2
        ports = {seen.target: seen.port for seen in server.requests}
        assert ports["/3"] == server.requests[0].port and ports["/4"] == server.requests[1].port

    run(loop, main())


@on_loops
def test_pool_acquire_timeout(loop: str) -> None:
    async def main() -> None:
        async with HTTPServer() as server, ConnectionPool(max_connections_per_origin=1) as pool:
            async with await pool.request(b"GET", server.url(), []):
                with pytest.raises(UpstreamTimeout) as info:
                    await pool.request(b"GET", server.url(), [], timeouts=Timeouts(pool=0.1))
                assert info.value.phase == "pool" and info.value.status == 504
                assert _stats(pool, server) == {"total": 1, "idle": 0, "in_use": 1, "waiters": 0}

    run(loop, main())


@on_loops
def test_idle_connection_is_evicted(loop: str) -> None:
    async def main() -> None:
        async with HTTPServer() as server, ConnectionPool(idle_timeout=0.1) as pool:
            await (await pool.request(b"GET", server.url(), [])).read()
            assert _stats(pool, server)["idle"] == 1
            await until(lambda: server.closed == server.ports)  # the server saw us hang up
            assert pool.stats() == {}
            await (await pool.request(b"GET", server.url(), [])).read()
        assert len(server.ports) == 2

    run(loop, main())


@on_loops
def test_response_closed_early_closes_its_connection(loop: str) -> None:
    async def main() -> None:
        server = HTTPServer()
        server.replies.append(Reply(body=b"a" * 100, fault="stall_body"))
        async with server, ConnectionPool() as pool:
            resp = await pool.request(b"GET", server.url(), [])
            assert await resp.iter_bytes().__anext__() == b"a" * 50
            await resp.aclose()
            assert pool.stats() == {}
            await until(lambda: server.closed == server.ports[:1])
            await (await pool.request(b"GET", server.url(), [])).read()
        assert len(server.ports) == 2

    run(loop, main())


@on_loops
def test_cancel_while_waiting_for_the_head_closes_the_connection(loop: str) -> None:
    async def main() -> None:
        async with HTTPServer(default=Reply(fault="stall_head")) as server:
            async with ConnectionPool() as pool:
                task = asyncio.create_task(pool.request(b"GET", server.url(), []))
                await until(lambda: len(server.requests) == 1)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert pool.stats() == {}
                await until(lambda: server.closed == server.ports)

    run(loop, main())


@on_loops
def test_cancel_while_reading_the_body_closes_the_connection(loop: str) -> None:
    async def main() -> None:
        chunks: list[bytes] = []

        async def consume(pool: ConnectionPool, url: str) -> None:
            async with await pool.request(b"GET", url, []) as resp:
                async for chunk in resp.iter_bytes():
                    chunks.append(chunk)

        async with HTTPServer(default=Reply(fault="stall_body")) as server:
            async with ConnectionPool() as pool:
                task = asyncio.create_task(consume(pool, server.url()))
                await until(lambda: bool(chunks))
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert pool.stats() == {}
                await until(lambda: server.closed == server.ports)

    run(loop, main())


@on_loops
def test_cancel_inside_async_with_after_the_head_closes_the_connection(loop: str) -> None:
    async def main() -> None:
        held = asyncio.Event()

        async def hold(pool: ConnectionPool, url: str) -> None:
            async with await pool.request(b"GET", url, []):
                held.set()
                await asyncio.Event().wait()  # cancelled here, body unread

        async with HTTPServer(default=Reply(body=b"q" * 100_000)) as server:
            async with ConnectionPool() as pool:
                task = asyncio.create_task(hold(pool, server.url()))
                await held.wait()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert pool.stats() == {}

    run(loop, main())


@on_loops
def test_cancel_while_queued_leaves_counts_intact(loop: str) -> None:
    async def main() -> None:
        async with HTTPServer() as server, ConnectionPool(max_connections_per_origin=1) as pool:
            first = await pool.request(b"GET", server.url(), [])
            queued = asyncio.create_task(pool.request(b"GET", server.url(), []))
            await until(lambda: _stats(pool, server)["waiters"] == 1)
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
            assert _stats(pool, server) == {"total": 1, "idle": 0, "in_use": 1, "waiters": 0}
            await first.read()
            assert _stats(pool, server) == {"total": 1, "idle": 1, "in_use": 0, "waiters": 0}

    run(loop, main())


@on_loops
def test_failed_connects_do_not_leak_slots(loop: str) -> None:
    async def main() -> None:
        url = f"http://127.0.0.1:{refused_port()}/"
        async with ConnectionPool(max_connections_per_origin=1) as pool:
            for _ in range(3):
                with pytest.raises(UpstreamConnectError):
                    await pool.request(b"GET", url, [], timeouts=Timeouts(pool=1.0))
                assert pool.stats() == {}

    run(loop, main())


@on_loops
def test_concurrent_requests_stay_within_the_limit(loop: str) -> None:
    async def main() -> None:
        async def one(pool: ConnectionPool, url: str) -> bytes:
            async with await pool.request(b"GET", url, []) as resp:
                return await resp.read()

        async with HTTPServer() as server, ConnectionPool(max_connections_per_origin=3) as pool:
            bodies = await asyncio.gather(*(one(pool, server.url()) for _ in range(20)))
            assert bodies == [b"hello"] * 20
            assert _stats(pool, server)["total"] <= 3
        assert len(server.ports) <= 3 and len(server.requests) == 20

    run(loop, main())


@on_loops
def test_aclose_closes_connections_and_refuses_requests(loop: str) -> None:
    async def main() -> None:
        async with HTTPServer(default=Reply(fault="stall_body")) as server:
            pool = ConnectionPool(max_connections_per_origin=1)
            busy: Response = await pool.request(b"GET", server.url(), [])
            queued = asyncio.create_task(pool.request(b"GET", server.url(), []))
            await until(lambda: _stats(pool, server)["waiters"] == 1)
            await pool.aclose()
            with pytest.raises(UpstreamConnectError):
                await queued
            with pytest.raises(UpstreamConnectError) as info:
                await pool.request(b"GET", server.url(), [])
            assert info.value.code == "upstream_pool_closed"
            await busy.aclose()
            assert pool.stats() == {}
            await until(lambda: server.closed == server.ports)

    run(loop, main())


def test_parse_url() -> None:
    assert parse_url("https://API.example.com/v1/chat?x=1#frag") == (
        Origin("https", "api.example.com", 443),
        b"/v1/chat?x=1",
    )
    assert parse_url("http://[::1]:8080") == (Origin("http", "::1", 8080), b"/")
    assert str(Origin("http", "::1", 8080)) == "http://[::1]:8080"
    for bad in ("ftp://x/", "/relative", "http:///nohost", "http://h:99999/"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_request_headers_defaults() -> None:
    origin = Origin("https", "api.example.com", 443)
    assert request_headers(b"POST", [(b"x", b"1")], origin, b"abc") == [
        (b"host", b"api.example.com"),
        (b"x", b"1"),
        (b"content-length", b"3"),
    ]
    assert request_headers(b"GET", [], Origin("http", "h", 81), b"") == [(b"host", b"h:81")]
    chunked = [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")]
    assert request_headers(b"POST", chunked, origin, b"abc") == chunked


class _Probe(HTTP11Connection):
    """An HTTP/1.1 connection that never connects and counts how often the pool probes it."""

    probes = 0

    def __init__(self, origin: Origin) -> None:
        super().__init__(origin)
        self.alive, self.idle = True, True

    def _probe(self) -> None:
        type(self).probes += 1

    def is_available(self) -> bool:
        self._probe()
        return self.alive and self.idle

    def is_idle(self) -> bool:
        self._probe()
        return self.alive and self.idle

    def is_closed(self) -> bool:
        self._probe()
        return not self.alive

    def has_expired(self, now: float) -> bool:
        self._probe()
        return not self.alive

    def claim(self) -> None:
        assert self.alive and self.idle
        self.idle = False

    def abort(self) -> None:
        self.alive = False


def _probe_pool(count: int, limit: int = 100) -> tuple[ConnectionPool, OriginPool, list[_Probe]]:
    pool = ConnectionPool(max_connections_per_origin=limit)
    op = pool._origins[ORIGIN, None] = OriginPool(ORIGIN, None)
    conns = [_Probe(ORIGIN) for _ in range(count)]
    op.connections = list(conns)
    for conn in conns:
        pool._release(op, conn)
    return pool, op, conns


ORIGIN = Origin("http", "127.0.0.1", 9)


def test_idle_checkout_does_not_scan_every_connection() -> None:
    async def main() -> None:
        pool, op, conns = _probe_pool(64)
        _Probe.probes = 0
        got = [await pool._acquire(op, None) for _ in range(3)]
        assert got == [conns[-1], conns[-2], conns[-3]]  # most recently released first
        assert _Probe.probes <= 3 * 3  # a few probes per checkout, not 64
        conns[-1].idle = True
        pool._release(op, conns[-1])
        assert await pool._acquire(op, None) is conns[-1]

    asyncio.run(main())


def test_connections_closed_while_idle_are_skipped_and_forgotten() -> None:
    async def main() -> None:
        pool, op, conns = _probe_pool(4)
        conns[3].alive = conns[2].alive = False  # the upstream hung up on the two newest
        assert await pool._acquire(op, None) is conns[1]
        assert conns[2] not in op.connections and conns[3] not in op.connections
        assert pool.stats()[str(ORIGIN)] == {"total": 2, "idle": 1, "in_use": 1, "waiters": 0}

    asyncio.run(main())


def test_limit_counts_only_live_connections() -> None:
    async def main() -> None:
        pool, op, conns = _probe_pool(2, limit=2)
        for conn in conns:
            conn.idle = False  # both busy, so neither is on the idle stack once taken
        op.idle.clear()
        conns[0].alive = False  # died while busy, not yet released
        fresh = await pool._acquire(op, None)
        assert isinstance(fresh, HTTP11Connection) and fresh not in conns
        assert op.connections == [conns[1], fresh]
        fresh.abort()
        conns[1].alive = False
        pool._release(op, fresh)
        pool._release(op, conns[1])
        assert pool.stats() == {} and not pool._origins

    asyncio.run(main())
