"""One HTTP/1.1 connection against a loopback server: framing, faults, timeouts, back-pressure.

Each I/O test runs on asyncio and on uvloop; error mapping is checked without sockets.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

import h11
import pytest

from modelmux import errors
from modelmux.upstream import (
    ConnectionPool,
    HTTP11Connection,
    Origin,
    Response,
    Timeouts,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamTLSError,
    map_errors,
)
from tests.upstream import HTTPServer, Reply, on_loops, refused_port, run, until


@on_loops
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_is_read_whole(loop: str, chunked: bool) -> None:
    async def main() -> None:
        reply = Reply(body=b"hello world", repeat=3, chunked=chunked, headers=[("X-Thing", "1")])
        async with HTTPServer(default=reply) as server, ConnectionPool() as pool:
            async with await pool.request(b"GET", server.url("/v1/models?x=1"), []) as resp:
                assert (resp.status, resp.reason) == (200, "OK")
                assert (b"x-thing", b"1") in resp.headers
                assert resp.get_header(b"x-thing") == b"1"
                assert await resp.read() == b"hello world" * 3
            assert resp.is_closed
            assert server.requests[0].target == "/v1/models?x=1"

    run(loop, main())


@on_loops
def test_iter_bytes_yields_chunks_as_they_arrive(loop: str) -> None:
    async def main() -> None:
        async with HTTPServer(default=Reply(body=b"x" * 1000, repeat=5, chunked=True)) as server:
            async with ConnectionPool() as pool:
                resp = await pool.request(b"GET", server.url(), [])
                chunks = [chunk async for chunk in resp.iter_bytes()]
                assert b"".join(chunks) == b"x" * 5000
                assert all(isinstance(c, bytes) and c for c in chunks)
                assert resp.is_closed and pool.stats()[str(_origin(server))]["idle"] == 1

    run(loop, main())


@on_loops
def test_host_and_content_length_are_added_user_agent_is_not(loop: str) -> None:
    async def main() -> None:
        async with HTTPServer() as server, ConnectionPool() as pool:
            await (await pool.request(b"POST", server.url(), [], b'{"a":1}')).read()
            await (await pool.request(b"GET", server.url(), [(b"Host", b"example.test")])).read()
            await (await pool.request(b"POST", server.url(), [])).read()
        post, get, empty = server.requests
        assert post.header(b"host") == f"127.0.0.1:{server.port}".encode()
        assert post.header(b"content-length") == b"7" and post.body == b'{"a":1}'
        assert post.header(b"user-agent") is None
        assert get.header(b"host") == b"example.test" and get.header(b"content-length") is None
        assert empty.header(b"content-length") == b"0"

    run(loop, main())


@on_loops
def test_informational_response_is_skipped(loop: str) -> None:
    async def main() -> None:
        async with HTTPServer(default=Reply(informational=True)) as server, ConnectionPool() as p:
            resp = await p.request(b"GET", server.url(), [])
            assert resp.status == 200 and await resp.read() == b"hello"

    run(loop, main())


@on_loops
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("fault", ["reset_body", "close_body"])
def test_cut_mid_body_raises_closed_from_iterator(loop: str, fault: str, chunked: bool) -> None:
    async def main() -> None:
        reply = Reply(body=b"y" * 4000, chunked=chunked, fault=fault)
        async with HTTPServer(default=reply) as server, ConnectionPool() as pool:
            resp = await pool.request(b"GET", server.url(), [])
            body = resp.iter_bytes()
            assert await body.__anext__() == b"y" * 2000
            server.proceed.set()
            with pytest.raises(UpstreamClosed) as info:
                async for _ in body:
                    pass
            assert info.value.status == 502 and info.value.code == "upstream_closed"
            assert resp.is_closed and pool.stats() == {}

    run(loop, main())


@on_loops
def test_stall_before_head_is_a_first_byte_timeout(loop: str) -> None:
    async def main() -> None:
        async with HTTPServer(default=Reply(fault="stall_head")) as server, ConnectionPool() as p:
            with pytest.raises(UpstreamTimeout) as info:
                await p.request(b"GET", server.url(), [], timeouts=Timeouts(first_byte=0.2))
            assert info.value.phase == "first_byte"
            assert info.value.code == "upstream_first_byte_timeout"
            assert isinstance(info.value, errors.UpstreamTimeout) and info.value.status == 504
            assert p.stats() == {}

    run(loop, main())


@on_loops
def test_upstream_not_reading_the_request_is_a_first_byte_timeout(loop: str) -> None:
    async def main() -> None:
        with socket.socket() as listener:  # connections wait in the backlog, never read
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
            async with ConnectionPool() as pool:
                with pytest.raises(UpstreamTimeout) as info:
                    body = b"u" * (32 * 1024 * 1024)  # more than the socket buffers hold
                    await pool.request(b"POST", url, [], body, Timeouts(first_byte=0.3))
                assert info.value.phase == "first_byte" and pool.stats() == {}

    run(loop, main())


@on_loops
def test_stall_mid_body_is_a_read_timeout(loop: str) -> None:
    async def main() -> None:
        async with HTTPServer(default=Reply(fault="stall_body")) as server, ConnectionPool() as p:
            resp = await p.request(b"GET", server.url(), [], timeouts=Timeouts(read=0.2))
            with pytest.raises(UpstreamTimeout) as info:
                await resp.read()
            assert info.value.phase == "read" and info.value.code == "upstream_read_timeout"
            assert resp.is_closed and p.stats() == {}

    run(loop, main())


@on_loops
def test_read_timeout_is_per_silence_not_per_body(loop: str) -> None:
    """Chunks 0.05 s apart for 0.6 s pass a 0.5 s read timeout (one timer, re-armed when it
    fires early, serves all the reads); the silence after them still times out. A gap is a
    tenth of the timeout, so only a loop stalled for 0.45 s could fail it."""
    async def main() -> None:
        done = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                for _ in range(12):
                    writer.write(b"1\r\nx\r\n")
                    await writer.drain()
                    await asyncio.sleep(0.05)
                await reader.read()  # silence until the client gives up
            finally:
                writer.close()
                done.set()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        async with server, ConnectionPool() as pool:
            resp = await pool.request(b"GET", url, [], timeouts=Timeouts(read=0.5))
            body = resp.iter_bytes()
            got = b""
            with pytest.raises(UpstreamTimeout) as info:
                async for piece in body:
                    got += piece
            assert got == b"x" * 12 and info.value.phase == "read"
            await asyncio.wait_for(done.wait(), 3.0)

    run(loop, main())


@on_loops
def test_garbage_response_is_a_protocol_error(loop: str) -> None:
    async def main() -> None:
        async with HTTPServer(default=Reply(fault="garbage")) as server, ConnectionPool() as p:
            with pytest.raises(UpstreamProtocolError) as info:
                await p.request(b"GET", server.url(), [])
            assert info.value.status == 502 and info.value.code == "upstream_protocol_error"
            assert p.stats() == {}

    run(loop, main())


@on_loops
def test_read_beyond_max_bytes_fails_and_closes(loop: str) -> None:
    async def main() -> None:
        async with HTTPServer(default=Reply(body=b"z" * 1000)) as server, ConnectionPool() as p:
            resp = await p.request(b"GET", server.url(), [])
            with pytest.raises(UpstreamProtocolError) as info:
                await resp.read(max_bytes=100)
            assert info.value.code == "upstream_response_too_large"
            assert p.stats() == {}

    run(loop, main())


@on_loops
def test_refused_connection_is_a_connect_error(loop: str) -> None:
    async def main() -> None:
        async with ConnectionPool() as pool:
            with pytest.raises(UpstreamConnectError) as info:
                await pool.request(b"GET", f"http://127.0.0.1:{refused_port()}/", [])
            assert info.value.status == 502 and info.value.code == "upstream_connect_error"
            assert pool.stats() == {}

    run(loop, main())


HIGH = 256 * 1024
BIG = 50 * 1024 * 1024


@on_loops
def test_slow_reader_keeps_the_buffer_bounded(loop: str) -> None:
    async def main() -> None:
        reply = Reply(body=b"b" * (1024 * 1024), repeat=BIG // (1024 * 1024))
        async with HTTPServer(default=reply) as server:
            conn = HTTP11Connection(_origin(server), high_water=HIGH, low_water=HIGH // 4)
            headers = [(b"host", b"127.0.0.1")]
            head = await conn.handle_request(b"GET", b"/", headers, b"", Timeouts())
            resp = Response(conn, head, read_timeout=5.0)
            await until(lambda: conn.reading_paused)  # the server outran us; reading stopped
            peak, pauses, total = conn.buffered_bytes, 0, 0
            async for chunk in resp.iter_bytes():
                total += len(chunk)
                for _ in range(3):  # a slow consumer: let the socket run ahead of us
                    await asyncio.sleep(0)
                peak = max(peak, conn.buffered_bytes)
                pauses += conn.reading_paused
            assert total == BIG
            assert pauses > 0
            assert peak <= HIGH + 256 * 1024, peak  # high-water mark plus at most one read
            assert conn.is_idle() and conn.buffered_bytes == 0
            conn.abort()
            closed = conn.wait_closed()
            if closed is not None:
                await closed

    run(loop, main(), timeout=30.0)


def test_errors_render_as_openai_errors() -> None:
    exc = UpstreamTimeout("slow", phase="connect")
    assert exc.to_dict()["error"]["type"] == "timeout_error"
    assert exc.to_dict()["error"]["code"] == "upstream_connect_timeout"
    for cls, code in [
        (UpstreamConnectError, "upstream_connect_error"),
        (UpstreamTLSError, "upstream_tls_error"),
        (UpstreamProtocolError, "upstream_protocol_error"),
        (UpstreamClosed, "upstream_closed"),
    ]:
        err = cls("x")
        assert isinstance(err, errors.UpstreamError) and err.status == 502 and err.code == code


@pytest.mark.parametrize(
    ("raised", "phase", "expected"),
    [
        (TimeoutError(), "read", UpstreamTimeout),
        (ConnectionRefusedError(), "connect", UpstreamConnectError),
        (ConnectionResetError(), "read", UpstreamClosed),
        (ssl.SSLError(1, "bad"), "connect", UpstreamTLSError),
        (h11.RemoteProtocolError("bad"), "first_byte", UpstreamProtocolError),
    ],
)
def test_map_errors_translates_foreign_exceptions(
    raised: Exception, phase: str, expected: type[Exception]
) -> None:
    with pytest.raises(expected) as info:
        with map_errors(phase, "http://h:80"):  # type: ignore[arg-type]
            raise raised
    assert info.value.__cause__ is raised


def _origin(server: HTTPServer) -> Origin:
    return Origin("http", "127.0.0.1", server.port)
