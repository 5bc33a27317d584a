"""The HTTP/1.1 server on real loopback sockets, under asyncio and uvloop."""

from __future__ import annotations

import asyncio
import json

import msgspec

from modelmux.errors import RateLimited
from modelmux.server.exchange import Exchange
from tests.server.helpers import DEADLINE, closed_by_peer, connect, read_response, running


async def echo(exchange: Exchange) -> None:
    body = await exchange.read_body()
    payload = {"method": exchange.method, "path": exchange.path, "query": exchange.query,
               "body": body.decode(), "version": exchange.http_version}
    await exchange.respond(200, [(b"content-type", b"application/json")], msgspec.json.encode(payload))


def test_keep_alive_serves_several_requests_on_one_connection(run) -> None:
    async def main() -> None:
        async with running(echo) as (_, port):
            reader, writer = await connect(port)
            for i in range(3):
                writer.write(f"GET /r{i}?x=1 HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                status, headers, body = await read_response(reader)
                assert status == 200
                assert json.loads(body)["path"] == f"/r{i}"
                assert json.loads(body)["query"] == "x=1"
                assert "date" in headers and headers["server"] == "modelmux"
            writer.close()

    run(main())


def test_pipelined_requests_are_answered_in_order(run) -> None:
    async def main() -> None:
        async with running(echo) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"".join(
                f"POST /p{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{i:02d}".encode() for i in range(5)
            ))
            for i in range(5):
                status, _, body = await read_response(reader)
                assert status == 200
                assert json.loads(body) == {"method": "POST", "path": f"/p{i}", "query": "",
                                            "body": f"{i:02d}", "version": "1.1"}
            writer.close()

    run(main())


def test_chunked_and_content_length_bodies(run) -> None:
    async def main() -> None:
        async with running(echo) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
            status, _, body = await read_response(reader)
            assert status == 200 and json.loads(body)["body"] == "hello world"
            writer.write(b"POST /l HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello")
            await asyncio.sleep(0)
            writer.write(b" world")
            status, _, body = await read_response(reader)
            assert status == 200 and json.loads(body)["body"] == "hello world"
            writer.close()

    run(main())


def test_expect_100_continue_is_answered_before_the_body(run) -> None:
    async def main() -> None:
        async with running(echo) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
            status, _, _ = await read_response(reader)
            assert status == 100
            writer.write(b"data")
            status, _, body = await read_response(reader)
            assert status == 200 and json.loads(body)["body"] == "data"
            writer.close()

    run(main())


def test_head_gets_headers_without_a_body(run) -> None:
    async def main() -> None:
        async with running(echo) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\nGET /after HTTP/1.1\r\nHost: t\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert b"content-length: " in head.lower()
            status, _, body = await read_response(reader)  # the next bytes are the next response
            assert status == 200 and json.loads(body)["path"] == "/after"
            writer.close()

    run(main())


def test_connection_close_is_honoured(run) -> None:
    async def main() -> None:
        async with running(echo) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            status, headers, _ = await read_response(reader)
            assert status == 200 and headers["connection"] == "close"
            assert await closed_by_peer(reader)
            writer.close()

    run(main())


def test_http_1_0_request_is_answered_and_closed(run) -> None:
    async def main() -> None:
        async with running(echo) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"GET /old HTTP/1.0\r\n\r\n")
            status, _, body = await read_response(reader)
            assert status == 200 and json.loads(body)["version"] == "1.0"
            assert await closed_by_peer(reader)
            writer.close()

    run(main())


def test_handler_exception_becomes_openai_500_and_server_lives(run, caplog) -> None:
    async def broken(exchange: Exchange) -> None:
        if exchange.path == "/boom":
            raise ValueError("kaboom")
        await echo(exchange)

    async def main() -> None:
        async with running(broken) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n")
            status, headers, body = await read_response(reader)
            assert status == 500 and headers["content-type"] == "application/json"
            error = json.loads(body)["error"]
            assert error["type"] == "server_error" and error["code"] == "internal_error"
            assert set(error) == {"message", "type", "code", "param"}
            writer.write(b"GET /fine HTTP/1.1\r\nHost: t\r\n\r\n")
            status, _, _ = await read_response(reader)
            assert status == 200
            writer.close()

    run(main())
    assert any("kaboom" in (r.exc_text or "") for r in caplog.records)


def test_modelmux_error_keeps_its_status_and_headers(run) -> None:
    async def limited(exchange: Exchange) -> None:
        raise RateLimited("slow down", headers=[(b"retry-after", b"7")])

    async def main() -> None:
        async with running(limited) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            status, headers, body = await read_response(reader)
            assert status == 429 and headers["retry-after"] == "7"
            assert json.loads(body)["error"]["code"] == "rate_limit_exceeded"
            writer.close()

    run(main())


def test_exception_mid_stream_cuts_the_connection(run) -> None:
    async def half(exchange: Exchange) -> None:
        await exchange.start(200, [(b"content-type", b"text/plain")])
        await exchange.write(b"partial")
        raise RuntimeError("upstream died")

    async def main() -> None:
        async with running(half) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), DEADLINE)
            assert b"partial" in data
            assert not data.endswith(b"0\r\n\r\n")  # no clean end of the chunked body
            writer.close()

    run(main())


def test_client_disconnect_cancels_the_handler(run) -> None:
    async def main() -> None:
        cancelled = asyncio.Event()
        started = asyncio.Event()

        async def slow(exchange: Exchange) -> None:
            started.set()
            try:
                await asyncio.sleep(DEADLINE)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        async with running(slow) as (_, port):
            _, writer = await connect(port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            await asyncio.wait_for(started.wait(), DEADLINE)
            writer.close()
            await asyncio.wait_for(cancelled.wait(), DEADLINE)

    run(main())


def test_slow_reader_pauses_the_writer(run) -> None:
    async def main() -> None:
        produced = 0
        blocked = asyncio.Event()
        piece = b"x" * 65536

        async def firehose(exchange: Exchange) -> None:
            nonlocal produced
            await exchange.start(200, [(b"content-type", b"application/octet-stream")])
            for _ in range(2000):  # 128 MiB if nothing pushed back
                writer_task = asyncio.ensure_future(exchange.write(piece))
                done, _ = await asyncio.wait({writer_task}, timeout=0.5)
                if not done:
                    blocked.set()
                    await writer_task
                produced += len(piece)
            await exchange.end()

        async with running(firehose) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            await asyncio.wait_for(blocked.wait(), DEADLINE)
            # Producer is parked: what it produced is bounded by socket buffers + high-water mark.
            assert produced < 32 * 1024 * 1024
            writer.close()

    run(main())


def test_graceful_shutdown_lets_in_flight_requests_finish(run) -> None:
    async def main() -> None:
        started = asyncio.Event()
        release = asyncio.Event()

        async def slow(exchange: Exchange) -> None:
            started.set()
            await release.wait()
            await exchange.respond(200, [], b"done")

        async with running(slow, drain_timeout=5.0) as (server, port):
            reader, writer = await connect(port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            await asyncio.wait_for(started.wait(), DEADLINE)
            shutdown = asyncio.ensure_future(server.shutdown())
            await asyncio.sleep(0.05)
            assert not shutdown.done()
            try:
                refused = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                pass
            else:
                refused[1].close()
                raise AssertionError("new connection accepted while draining")
            release.set()
            status, headers, body = await read_response(reader)
            assert status == 200 and body == b"done" and headers["connection"] == "close"
            await asyncio.wait_for(shutdown, DEADLINE)
            writer.close()

    run(main())


def test_drain_timeout_cuts_stuck_requests(run) -> None:
    async def main() -> None:
        started = asyncio.Event()

        async def stuck(exchange: Exchange) -> None:
            started.set()
            await asyncio.sleep(DEADLINE * 10)

        async with running(stuck, drain_timeout=0.2) as (server, port):
            reader, writer = await connect(port)
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            await asyncio.wait_for(started.wait(), DEADLINE)
            await asyncio.wait_for(server.shutdown(), DEADLINE)
            assert await closed_by_peer(reader)
            assert not server.connections
            writer.close()

    run(main())


TRICKLE = [b"x" * 5] * 16
"""A body sent a piece every ``TRICKLE_GAP`` s: longer than ``body_timeout=0.5`` in total."""
TRICKLE_GAP = 0.05


def test_body_trickled_longer_than_body_timeout_with_short_gaps_is_read(run) -> None:
    async def main() -> None:
        async with running(echo, body_timeout=0.5) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"POST /t HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                         % sum(map(len, TRICKLE)))
            for piece in TRICKLE:
                await asyncio.sleep(TRICKLE_GAP)
                writer.write(piece)
            status, _, body = await read_response(reader)
            assert status == 200 and json.loads(body)["body"] == b"".join(TRICKLE).decode()
            writer.close()

    run(main())


def test_body_gap_longer_than_body_timeout_gets_408(run) -> None:
    async def main() -> None:
        async with running(echo, body_timeout=0.5) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"POST /t HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n")
            for piece in TRICKLE[:4]:
                await asyncio.sleep(TRICKLE_GAP)
                writer.write(piece)
            status, _, body = await read_response(reader)  # and then nothing
            assert status == 408 and json.loads(body)["error"]["code"] == "request_timeout"
            writer.close()

    run(main())
