"""HTTP2Connection against our own h2 server (h2c prior knowledge on loopback), on both loops."""

from __future__ import annotations

import asyncio

import pytest

from modelmux.config.settings import H2Settings
from modelmux.server.exchange import Exchange
from modelmux.upstream import Origin, Timeouts, UpstreamClosed
from modelmux.upstream.h2connection import HTTP2Connection, StreamRefused
from tests.server.h2_helpers import serving
from tests.upstream import on_loops, run, until

T = Timeouts(connect=5, first_byte=5, read=5)


async def open_conn(port: int, **kw: object) -> HTTP2Connection:
    conn = HTTP2Connection(Origin("http", "127.0.0.1", port), **kw)  # type: ignore[arg-type]
    await conn.connect(5)
    return conn


@on_loops
def test_fifty_concurrent_requests_share_one_connection(loop: str) -> None:
    async def echo(ex: Exchange) -> None:
        body = await ex.read_body()
        await asyncio.sleep(0.01)
        await ex.respond(200, [(b"x-path", ex.path.encode())], ex.path.encode() + b":" + body)

    async def one(conn: HTTP2Connection, i: int) -> bytes:
        async with await conn.handle_request(b"POST", f"/{i}".encode(), [], b"b" * i, T) as s:
            assert s.status == 200 and s.get_header(b"x-path") == f"/{i}".encode()
            return await s.read()

    async def main() -> None:
        async with serving(echo) as (_, port):
            conn = await open_conn(port)
            assert conn.limit == 100 and conn.is_available() and conn.is_idle()
            results = await asyncio.gather(*[one(conn, i) for i in range(50)])
            assert results == [f"/{i}:".encode() + b"b" * i for i in range(50)]
            assert conn.is_idle() and not conn.is_closed()
            await conn.aclose()
            assert conn.is_closed() and conn.has_expired(0)

    run(loop, main())


@on_loops
def test_limit_follows_peer_max_concurrent_streams(loop: str) -> None:
    gate = asyncio.Event

    async def main() -> None:
        release = gate()

        async def wait(ex: Exchange) -> None:
            await release.wait()
            await ex.respond(200, [], b"ok")

        async with serving(wait, http2=H2Settings(max_concurrent_streams=2)) as (_, port):
            conn = await open_conn(port)
            assert conn.limit == 2
            tasks = [asyncio.create_task(conn.handle_request(b"GET", b"/", [], b"", T))
                     for _ in range(2)]
            await until(lambda: conn.active_streams == 2)
            assert not conn.is_available() and not conn.is_idle()
            with pytest.raises(StreamRefused):
                await conn.handle_request(b"GET", b"/", [], b"", T)
            release.set()
            for t in tasks:
                assert await (await t).read() == b"ok"
            assert conn.is_available()
            await conn.aclose()

    run(loop, main())


@on_loops
def test_streamed_body_and_large_request_body(loop: str) -> None:
    async def stream(ex: Exchange) -> None:
        size = len(await ex.read_body())
        await ex.start(200, [])
        for i in range(5):
            await ex.write(f"{i}:{size};".encode())
            await asyncio.sleep(0.005)
        await ex.end()

    async def main() -> None:
        async with serving(stream) as (_, port):
            conn = await open_conn(port)

            async def body():  # type: ignore[no-untyped-def]
                for _ in range(10):
                    yield b"z" * 100_000  # 1 MB: far past the 64 KiB initial send window

            s = await conn.handle_request(b"POST", b"/s", [], body(), T)
            chunks = [c async for c in s.iter_bytes()]
            assert b"".join(chunks) == b"".join(f"{i}:1000000;".encode() for i in range(5))
            assert len(chunks) >= 2 and s.is_closed
            await conn.aclose()

    run(loop, main())


@on_loops
def test_cancelled_request_resets_only_its_stream(loop: str) -> None:
    async def main() -> None:
        cancelled: list[str] = []
        entered = {"/a": asyncio.Event(), "/b": asyncio.Event()}
        release = asyncio.Event()

        async def slow(ex: Exchange) -> None:
            entered[ex.path].set()
            try:
                await release.wait()
            except asyncio.CancelledError:
                cancelled.append(ex.path)
                raise
            await ex.respond(200, [], b"done " + ex.path.encode())

        async with serving(slow) as (_, port):
            conn = await open_conn(port)
            a = asyncio.create_task(conn.handle_request(b"GET", b"/a", [], b"", T))
            b = asyncio.create_task(conn.handle_request(b"GET", b"/b", [], b"", T))
            await asyncio.wait_for(entered["/a"].wait(), 5)
            await asyncio.wait_for(entered["/b"].wait(), 5)
            a.cancel()
            with pytest.raises(asyncio.CancelledError):
                await a
            await until(lambda: cancelled == ["/a"])
            release.set()
            assert await (await b).read() == b"done /b"
            assert not conn.is_closed() and conn.is_available()
            await conn.aclose()

    run(loop, main())


@on_loops
def test_goaway_lets_in_flight_finish_and_refuses_new(loop: str) -> None:
    async def main() -> None:
        entered, release = asyncio.Event(), asyncio.Event()

        async def wait(ex: Exchange) -> None:
            entered.set()
            await release.wait()
            await ex.start(200, [])
            await ex.write(b"fin")
            await ex.write(b"ished")
            await ex.end()

        async with serving(wait) as (server, port):
            conn = await open_conn(port)
            inflight = asyncio.create_task(conn.handle_request(b"GET", b"/", [], b"", T))
            await asyncio.wait_for(entered.wait(), 5)
            stopping = asyncio.create_task(server.shutdown())
            await until(lambda: not conn.is_available())
            assert not conn.is_closed() and not conn.has_expired(0)
            with pytest.raises(StreamRefused):
                await conn.handle_request(b"GET", b"/new", [], b"", T)
            release.set()
            assert await (await inflight).read() == b"finished"
            await asyncio.wait_for(stopping, 5)
            await until(conn.is_closed)
            assert conn.has_expired(0)

    run(loop, main())


class Firehose:
    """An HTTP/2 answer of ``total`` bytes written as fast as the window lets; ``written``
    counts what got past ``ex.write``."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.written = 0

    async def __call__(self, ex: Exchange) -> None:
        await ex.start(200, [])
        while self.written < self.total:
            await ex.write(b"x" * 8192)
            self.written += 8192
        await ex.end()


@on_loops
def test_slow_consumer_is_bounded_by_the_stream_window(loop: str) -> None:
    window = 32 * 1024
    total = 2 * 1024 * 1024
    firehose = Firehose(total)

    async def main() -> None:
        async with serving(firehose) as (_, port):
            conn = await open_conn(port, stream_window=window)
            s = await conn.handle_request(b"GET", b"/", [], b"", T)
            await asyncio.sleep(0.2)  # nobody reading: the server must stall
            assert conn.buffered_bytes <= window
            assert firehose.written < total // 2
            got, peak = 0, 0
            async for chunk in s.iter_bytes():
                got += len(chunk)
                peak = max(peak, conn.buffered_bytes)
                if got % (256 * 1024) < len(chunk):
                    await asyncio.sleep(0.01)
            assert got == total and peak <= window
            await conn.aclose()

    run(loop, main())


@on_loops
def test_connection_lost_fails_open_streams(loop: str) -> None:
    async def main() -> None:
        entered = asyncio.Event()

        async def hang(ex: Exchange) -> None:
            entered.set()
            await asyncio.sleep(30)

        async with serving(hang) as (server, port):
            conn = await open_conn(port)
            task = asyncio.create_task(conn.handle_request(b"GET", b"/", [], b"", T))
            await asyncio.wait_for(entered.wait(), 5)
            server.abort_all()
            with pytest.raises(UpstreamClosed):
                await task
            assert conn.is_closed()

    run(loop, main())
