"""The drain after an upgrade hand-over (``Server.shutdown(handover=True)``) on real sockets:
keep-alive clients lose no request to a close racing them."""

from __future__ import annotations

import asyncio

import h2.events

from modelmux.server.exchange import Exchange
from modelmux.server.h2 import H2Protocol
from tests.server.h2_helpers import RawH2, serving
from tests.server.helpers import DEADLINE, closed_by_peer, connect, read_response, running
from tests.upstream import until


def test_a_response_under_way_at_the_hand_over_keeps_its_connection_for_one_more(run) -> None:
    """Its head promised keep-alive, so the client may send its next request on it at once:
    that request is answered, with ``Connection: close``, instead of meeting a reset."""

    async def main() -> None:
        started, release = asyncio.Event(), asyncio.Event()

        async def streaming(exchange: Exchange) -> None:
            await exchange.start(200, [])
            if exchange.path == "/slow":
                started.set()
                await release.wait()
            await exchange.write(b"part")
            await exchange.end()

        async with running(streaming, drain_timeout=5.0) as (server, port):
            reader, writer = await connect(port)
            writer.write(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
            await asyncio.wait_for(started.wait(), DEADLINE)
            draining = asyncio.ensure_future(server.shutdown(handover=True))
            await until(lambda: server.handover_grace is not None)  # retire() has run
            release.set()
            status, headers, body = await read_response(reader)
            assert status == 200 and body == b"part" and "connection" not in headers
            writer.write(b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n")
            status, headers, body = await read_response(reader)
            assert status == 200 and body == b"part" and headers["connection"] == "close"
            assert await closed_by_peer(reader)
            await asyncio.wait_for(draining, DEADLINE)
            writer.close()

    run(main())


def test_an_idle_connection_is_answered_within_the_grace_then_closed(run) -> None:
    async def main() -> None:
        async def ok(exchange: Exchange) -> None:
            await exchange.respond(200, [], b"ok")

        async with running(ok, drain_timeout=5.0) as (server, port):
            busy_reader, busy_writer = await connect(port)
            idle_reader, idle_writer = await connect(port)
            for writer in (busy_writer, idle_writer):
                writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            for reader in (busy_reader, idle_reader):
                assert (await read_response(reader))[0] == 200
            draining = asyncio.ensure_future(server.shutdown(handover=True))
            await asyncio.sleep(0)
            busy_writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")  # as the drain begins
            status, headers, _ = await read_response(busy_reader)
            assert status == 200 and headers["connection"] == "close"
            assert await closed_by_peer(busy_reader)
            assert await closed_by_peer(idle_reader)  # nothing sent: closed once the grace is over
            await asyncio.wait_for(draining, DEADLINE)
            assert not server.connections
            busy_writer.close()
            idle_writer.close()

    run(main())


def test_http2_retire_timer_is_cancelled_when_the_last_stream_ends(run) -> None:
    """A retire that waited for a busy connection: once it goes idle the GOAWAY goes out and
    the pending retire timer is cancelled, leaving only the close timer."""

    async def main() -> None:
        release = asyncio.Event()

        async def slow(exchange: Exchange) -> None:
            await release.wait()
            await exchange.respond(200, [], b"ok")

        async with serving(slow) as (server, port):
            client = await RawH2.open(port)
            sid = client.request("/")
            client.flush()
            await until(lambda: any(isinstance(c, H2Protocol) and c.streams
                                    for c in server.connections))
            proto = next(c for c in server.connections if isinstance(c, H2Protocol))
            proto.retire(30.0)
            waiting = proto._timer
            assert waiting is not None
            server.handover_grace = 30.0  # as Server.shutdown(handover=True) sets it
            release.set()
            assert await client.read_until(h2.events.StreamEnded, sid) is not None
            assert await client.read_until(h2.events.ConnectionTerminated) is not None
            assert waiting.cancelled() and proto._timer is not None and proto._timer is not waiting
            server.handover_grace = None
            await client.close()

    run(main())
