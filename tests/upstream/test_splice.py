"""``splice``: the body handed over from the connection's read callback, HTTP/1.1 and HTTP/2.

The consumer gets every read's body bytes as they arrive and may stop at any read; what it
did not take stays for the next read. Endings, timeouts, cuts and malformed framing surface
from ``splice`` as they do from ``iter_bytes``, and only a body read to its end is pooled.
"""

from __future__ import annotations

import asyncio

import pytest

from modelmux.server.exchange import Exchange
from modelmux.upstream import (
    ConnectionPool,
    Timeouts,
    UpstreamClosed,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from tests.server.h2_helpers import serving
from tests.upstream import HTTPServer, Reply, on_loops, run, until
from tests.upstream.test_h2connection import Firehose, T, open_conn


class Taker:
    """A consumer that keeps what it is given; ``stop_after`` pieces, then it says stop."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.pieces: list[bytes] = []
        self.stop_after = stop_after

    def __call__(self, data: bytes) -> bool:
        self.pieces.append(data)
        return self.stop_after is None or len(self.pieces) < self.stop_after

    @property
    def body(self) -> bytes:
        return b"".join(self.pieces)


CHUNKED = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"


async def _scripted(*steps: bytes | float | asyncio.Event) -> tuple[asyncio.Server, str]:
    """A server that answers a request with ``steps`` (bytes written, seconds slept, events
    waited for), then waits for the client to leave."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            for step in steps:
                if isinstance(step, bytes):
                    writer.write(step)
                    await writer.drain()
                elif isinstance(step, asyncio.Event):
                    await step.wait()
                else:
                    await asyncio.sleep(step)
            await reader.read()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


def _idle(pool: ConnectionPool) -> int:
    return sum(row["idle"] for row in pool.stats().values())


@on_loops
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_splice_delivers_the_whole_body_and_pools_the_connection(loop: str, chunked: bool) -> None:
    async def main() -> None:
        reply = Reply(body=b"0123456789" * 100, repeat=7, chunked=chunked)
        async with HTTPServer(default=reply) as server, ConnectionPool() as pool:
            resp = await pool.request(b"GET", server.url(), [])
            taker = Taker()
            assert await resp.splice(taker) is True
            assert taker.body == b"0123456789" * 700 and all(taker.pieces)
            assert resp.is_closed and _idle(pool) == 1
            assert await resp.splice(taker) is True  # the body is over: nothing more
            assert await resp.read() == b""

    run(loop, main())


@on_loops
def test_pieces_are_pushed_as_they_arrive(loop: str) -> None:
    async def main() -> None:
        release = asyncio.Event()
        server, url = await _scripted(CHUNKED + b"5\r\nfirst\r\n", release,
                                      b"6\r\nsecond\r\n0\r\n\r\n")
        async with server, ConnectionPool() as pool:
            resp = await pool.request(b"GET", url, [])
            got: list[bytes] = []

            def consumer(data: bytes) -> bool:
                got.append(data)
                release.set()  # the second chunk is sent only once the first was pushed
                return True

            assert await resp.splice(consumer) is True
            assert got == [b"first", b"second"]

    run(loop, main())


@on_loops
def test_a_consumer_that_stops_leaves_the_rest_for_the_next_read(loop: str) -> None:
    async def main() -> None:
        release = asyncio.Event()
        server, url = await _scripted(CHUNKED + b"1\r\na\r\n", release,
                                      b"1\r\nb\r\n1\r\nc\r\n0\r\n\r\n")
        async with server, ConnectionPool() as pool:
            resp = await pool.request(b"GET", url, [])
            first = Taker(stop_after=1)
            assert await resp.splice(first) is False
            assert first.body == b"a" and not resp.is_closed
            release.set()
            assert await resp.read() == b"bc"
            assert _idle(pool) == 1

    run(loop, main())


@on_loops
def test_stopping_on_the_last_read_keeps_the_end_for_the_next_splice(loop: str) -> None:
    async def main() -> None:
        reply = Reply(body=b"tail", chunked=True)  # the whole response in one read
        async with HTTPServer(default=reply) as server, ConnectionPool() as pool:
            resp = await pool.request(b"GET", server.url(), [])
            taker = Taker(stop_after=1)
            assert await resp.splice(taker) is False
            assert taker.body == b"tail" and not resp.is_closed
            assert await resp.splice(taker) is True
            assert taker.body == b"tail" and resp.is_closed and _idle(pool) == 1

    run(loop, main())


@on_loops
def test_silence_mid_body_is_a_read_timeout(loop: str) -> None:
    async def main() -> None:
        reply = Reply(fault="stall_body", body=b"s" * 100)
        async with HTTPServer(default=reply) as server, ConnectionPool() as pool:
            resp = await pool.request(b"GET", server.url(), [], timeouts=Timeouts(read=0.2))
            taker = Taker()
            with pytest.raises(UpstreamTimeout) as info:
                await resp.splice(taker)
            assert info.value.phase == "read" and info.value.code == "upstream_read_timeout"
            assert taker.body == b"s" * 50  # the half that came before the silence
            assert resp.is_closed and pool.stats() == {}

    run(loop, main())


@on_loops
def test_read_timeout_is_per_silence_while_spliced(loop: str) -> None:
    """Chunks 0.05 s apart for 0.6 s pass a 0.5 s read timeout; the silence after them fails
    (a gap is a tenth of the timeout: only a loop stalled for 0.45 s could fail it)."""
    async def main() -> None:
        server, url = await _scripted(CHUNKED, *[b"1\r\nx\r\n", 0.05] * 12)
        async with server, ConnectionPool() as pool:
            resp = await pool.request(b"GET", url, [], timeouts=Timeouts(read=0.5))
            taker = Taker()
            with pytest.raises(UpstreamTimeout):
                await resp.splice(taker)
            assert taker.body == b"x" * 12

    run(loop, main())


@on_loops
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("fault", ["reset_body", "close_body"])
def test_a_cut_body_raises_closed(loop: str, fault: str, chunked: bool) -> None:
    async def main() -> None:
        reply = Reply(body=b"y" * 4000, chunked=chunked, fault=fault)
        async with HTTPServer(default=reply) as server, ConnectionPool() as pool:
            resp = await pool.request(b"GET", server.url(), [])
            taker = Taker()

            def consumer(data: bytes) -> bool:
                server.proceed.set()  # cut the body once its first half was taken
                return taker(data)

            with pytest.raises(UpstreamClosed) as info:
                await resp.splice(consumer)
            assert info.value.code == "upstream_closed" and taker.body == b"y" * 2000
            assert resp.is_closed and pool.stats() == {}

    run(loop, main())


@on_loops
def test_bad_chunk_framing_is_a_protocol_error_after_the_good_bytes(loop: str) -> None:
    async def main() -> None:
        server, url = await _scripted(CHUNKED + b"3\r\nabc\r\nzz\r\nnot a chunk\r\n")
        async with server, ConnectionPool() as pool:
            resp = await pool.request(b"GET", url, [])
            taker = Taker()
            with pytest.raises(UpstreamProtocolError):
                await resp.splice(taker)
            assert taker.body == b"abc" and pool.stats() == {}

    run(loop, main())


@on_loops
def test_a_failing_consumer_fails_the_splice_and_closes_the_connection(loop: str) -> None:
    async def main() -> None:
        reply = Reply(body=b"q" * 10, chunked=True)
        async with HTTPServer(default=reply) as server, ConnectionPool() as pool:
            resp = await pool.request(b"GET", server.url(), [])

            def consumer(data: bytes) -> bool:
                raise ValueError("consumer bug")

            with pytest.raises(ValueError, match="consumer bug"):
                await resp.splice(consumer)
            assert resp.is_closed and pool.stats() == {}

    run(loop, main())


@on_loops
def test_cancelling_a_splice_closes_the_connection(loop: str) -> None:
    async def main() -> None:
        reply = Reply(fault="stall_body", body=b"c" * 100)
        async with HTTPServer(default=reply) as server, ConnectionPool() as pool:
            resp = await pool.request(b"GET", server.url(), [])
            taker = Taker()
            task = asyncio.ensure_future(resp.splice(taker))
            await until(lambda: bool(taker.pieces))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert resp.is_closed and pool.stats() == {}

    run(loop, main())


async def paced(ex: Exchange) -> None:
    """An HTTP/2 answer of ``/N`` pieces ``0;`` to ``N-1;``, 5 ms apart: one DATA frame each."""
    await ex.start(200, [])
    for i in range(int(ex.path[1:])):
        await ex.write(b"%d;" % i)
        await asyncio.sleep(0.005)
    await ex.end()


@on_loops
def test_h2_splice_gets_each_data_frame_as_it_arrives(loop: str) -> None:
    async def main() -> None:
        async with serving(paced) as (_, port):
            conn = await open_conn(port)
            stream = await conn.handle_request(b"GET", b"/5", [], b"", T)
            taker = Taker()
            assert await stream.splice(taker) is True
            assert taker.pieces == [b"0;", b"1;", b"2;", b"3;", b"4;"]
            assert stream.is_closed and conn.is_available()
            await conn.aclose()

    run(loop, main())


@on_loops
def test_h2_splice_stop_leaves_later_frames_for_the_next_read(loop: str) -> None:
    async def main() -> None:
        async with serving(paced) as (_, port):
            conn = await open_conn(port)
            stream = await conn.handle_request(b"GET", b"/4", [], b"", T)
            taker = Taker(stop_after=1)
            assert await stream.splice(taker) is False
            assert taker.pieces == [b"0;"]
            assert await stream.read() == b"1;2;3;"
            await conn.aclose()

    run(loop, main())


@on_loops
def test_h2_a_stopped_splice_leaves_the_peer_bounded_by_the_stream_window(loop: str) -> None:
    window, total = 32 * 1024, 2 * 1024 * 1024
    firehose = Firehose(total)

    async def main() -> None:
        async with serving(firehose) as (_, port):
            conn = await open_conn(port, stream_window=window)
            stream = await conn.handle_request(b"GET", b"/", [], b"", T)
            slow = Taker(stop_after=1)  # a client that fell behind after one piece
            assert await stream.splice(slow) is False
            await asyncio.sleep(0.2)
            assert conn.buffered_bytes <= window and firehose.written < total // 2
            rest = Taker()
            assert await stream.splice(rest) is True
            assert len(slow.body) + len(rest.body) == total
            await conn.aclose()

    run(loop, main())


@on_loops
def test_h2_splice_silence_is_a_read_timeout_and_a_lost_connection_fails(loop: str) -> None:
    async def one_then_hang(ex: Exchange) -> None:
        await ex.start(200, [])
        await ex.write(b"first")
        await asyncio.sleep(30)

    async def main() -> None:
        async with serving(one_then_hang) as (server, port):
            conn = await open_conn(port)
            stream = await conn.handle_request(b"GET", b"/", [], b"", T)
            taker = Taker()
            with pytest.raises(UpstreamTimeout) as info:
                await stream.splice(taker, 0.2)
            assert info.value.phase == "read" and taker.pieces == [b"first"]
            stream.abort()
            other = await conn.handle_request(b"GET", b"/", [], b"", T)
            await until(lambda: bool(other.chunks))
            server.abort_all()
            with pytest.raises(UpstreamClosed):
                await other.splice(Taker())

    run(loop, main())


@on_loops
def test_h2_a_failing_consumer_fails_the_splice_and_the_connection_lives_on(loop: str) -> None:
    async def two_then_hang(ex: Exchange) -> None:
        await ex.start(200, [])
        await ex.write(b"a")
        await asyncio.sleep(0.01)
        await ex.write(b"b")
        await asyncio.sleep(5)
        await ex.end()

    async def main() -> None:
        async with serving(two_then_hang) as (_, port):
            conn = await open_conn(port)
            stream = await conn.handle_request(b"GET", b"/", [], b"", T)

            def consumer(data: bytes) -> bool:
                if data == b"b":
                    raise ValueError("consumer bug")
                return True

            with pytest.raises(ValueError, match="consumer bug"):
                await stream.splice(consumer)
            stream.abort()  # what Response.splice does on any failure
            assert stream.is_closed and not conn.is_closed()
            again = await conn.handle_request(b"GET", b"/", [], b"", T)
            assert await again.splice(Taker(stop_after=1)) is False  # the connection still works
            await conn.aclose()

    run(loop, main())
