"""The pool over HTTP/2 against a fake provider speaking h2: multiplexing, the stream limit,
GOAWAY drain and retry, ALPN choice over TLS, cancellation of one stream, PING keep-alive,
idle expiry and failed dials."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from modelmux.upstream import (
    ConnectionPool,
    HTTP2Connection,
    Origin,
    Timeouts,
    UpstreamConnectError,
    UpstreamTimeout,
    UpstreamTLSError,
)
from modelmux.upstream.dial import open_tls
from tests.fakes import h2 as h2fake
from tests.fakes.h2 import H2Fake
from tests.fakes.http import Reply
from tests.fakes.openai import FakeOpenAI
from tests.upstream import on_loops, refused_port, run, until

T = Timeouts(connect=5, first_byte=5, read=5, pool=5)
BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
JSON = [(b"content-type", b"application/json")]


async def chat(pool: ConnectionPool, fake: H2Fake, *, http2: bool | None = True) -> dict:
    url = fake.base_url + "/v1/chat/completions"
    async with await pool.request(b"POST", url, JSON, BODY, T, http2=http2) as response:
        assert response.status == 200
        doc: dict = json.loads(await response.read())
        return doc


@on_loops
def test_concurrent_requests_share_one_connection_until_the_peer_limit(loop: str) -> None:
    async def main() -> None:
        async with H2Fake(FakeOpenAI(), max_streams=4) as fake, ConnectionPool() as pool:
            fake.gate = asyncio.Event()
            four = [asyncio.create_task(chat(pool, fake)) for _ in range(4)]
            await fake.wait_for(lambda: len(fake.app.requests) == 4)
            assert fake.connections == 1 and fake.peak_streams == 4
            two = [asyncio.create_task(chat(pool, fake)) for _ in range(2)]
            await fake.wait_for(lambda: len(fake.app.requests) == 6)
            assert fake.connections == 2  # the fifth stream needed a second connection
            assert pool.stats()[f"http://127.0.0.1:{fake.port}"]["total"] == 2
            fake.gate.set()
            docs = await asyncio.gather(*four, *two)
            assert all(d["choices"][0]["message"]["content"] for d in docs)
            await asyncio.gather(*[chat(pool, fake) for _ in range(8)])
            assert fake.connections == 2 and fake.resets == 0

    run(loop, main())


@on_loops
def test_per_origin_connection_limit_queues_streams(loop: str) -> None:
    async def main() -> None:
        async with H2Fake(FakeOpenAI(), max_streams=2) as fake, \
                ConnectionPool(max_connections_per_origin=1) as pool:
            fake.gate = asyncio.Event()
            tasks = [asyncio.create_task(chat(pool, fake)) for _ in range(5)]
            await fake.wait_for(lambda: len(fake.app.requests) == 2)
            stats = pool.stats()[f"http://127.0.0.1:{fake.port}"]
            assert stats["total"] == 1 and stats["waiters"] == 3
            fake.gate.set()
            assert len(await asyncio.gather(*tasks)) == 5
            assert fake.connections == 1

    run(loop, main())


@pytest.mark.parametrize("refuse_open", [False, True], ids=["drain", "refused"])
@on_loops
def test_goaway_drains_then_reconnects(loop: str, refuse_open: bool) -> None:
    async def main() -> None:
        async with H2Fake(FakeOpenAI()) as fake, ConnectionPool() as pool:
            fake.gate = asyncio.Event()
            first = [asyncio.create_task(chat(pool, fake)) for _ in range(3)]
            await fake.wait_for(lambda: len(fake.app.requests) == 3)
            fake.goaway(refuse_open=refuse_open)
            later = asyncio.create_task(chat(pool, fake))
            expected = 4 + (2 if refuse_open else 0)  # refused streams are sent again
            await fake.wait_for(lambda: len(fake.app.requests) == expected)
            assert fake.connections == 2
            fake.gate.set()
            assert len(await asyncio.gather(*first, later)) == 4
            await fake.wait_for(lambda: len(fake._conns) == 1)  # the old one closed, drained
            assert len(pool.stats()) == 1

    run(loop, main())


@pytest.mark.parametrize(("server", "http2", "version"), [
    (("h2", "http/1.1"), None, "h2"),
    (("http/1.1",), None, "http/1.1"),
    (("h2", "http/1.1"), False, "http/1.1"),
    (("h2", "http/1.1"), True, "h2"),
])
@on_loops
def test_alpn_picks_the_version_over_tls(loop: str, tmp_path: Path, server: tuple[str, ...],
                                         http2: bool | None, version: str) -> None:
    async def main() -> None:
        async with H2Fake(FakeOpenAI(), tls=tmp_path, alpn=server) as fake:
            async with ConnectionPool(ssl_context_factory=fake.client_context) as pool:
                await asyncio.gather(*[chat(pool, fake, http2=http2) for _ in range(3)])
                await chat(pool, fake, http2=http2)
            if version == "h2":
                assert (fake.connections, fake.h1_connections) == (1, 0)
            else:
                assert fake.connections == 0 and fake.h1_connections >= 1

    run(loop, main())


def test_http2_only_against_an_http1_only_server_is_a_tls_error(tmp_path: Path) -> None:
    async def main() -> None:
        async with H2Fake(FakeOpenAI(), tls=tmp_path, alpn=("http/1.1",)) as fake:
            async with ConnectionPool(ssl_context_factory=fake.client_context) as pool:
                with pytest.raises(UpstreamTLSError, match="ALPN"):
                    await chat(pool, fake, http2=True)
                assert pool.stats() == {}

    run("asyncio", main())


@on_loops
def test_read_timeout_is_per_silence_not_per_stream(loop: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """DATA frames 0.05 s apart for 0.6 s pass a 0.5 s read timeout (one timer per stream,
    re-armed when it fires early); the silence after them is a read timeout. A gap is a tenth
    of the timeout, so only a loop stalled for 0.45 s could fail it."""
    send_data = h2fake._Conn.send_data

    async def paced(self: object, sid: int, data: bytes, *, end: bool) -> None:
        await asyncio.sleep(0.05)
        await send_data(self, sid, data, end=end)  # type: ignore[arg-type]

    monkeypatch.setattr(h2fake._Conn, "send_data", paced)

    async def main() -> None:
        events = [b"data: %d\n\n" % i for i in range(13)]
        app = FakeOpenAI()

        async def handle(_: object) -> Reply:
            return Reply(events=events, hold_after=12)

        app.handle = handle  # type: ignore[assignment,method-assign]
        async with H2Fake(app) as fake, ConnectionPool() as pool:
            timeouts = Timeouts(connect=5, first_byte=5, read=0.5, pool=5)
            resp = await pool.request(b"POST", fake.base_url + "/v1/chat/completions", JSON,
                                      BODY, timeouts, http2=True)
            got = b""
            with pytest.raises(UpstreamTimeout) as caught:
                async for piece in resp.iter_bytes():
                    got += piece
            assert got == b"".join(events[:12]) and caught.value.phase == "read"

    run(loop, main())


@on_loops
def test_data_frames_that_arrived_together_are_read_as_one_piece(loop: str) -> None:
    """A stream's DATA frames (one per event) that are all in come out of one read, in order,
    and their flow-control credit goes back to the peer."""
    async def main() -> None:
        events = [b"data: %d\n\n" % i for i in range(8)]
        app = FakeOpenAI()

        async def handle(_: object) -> Reply:
            return Reply(events=events)

        app.handle = handle  # type: ignore[assignment,method-assign]
        async with H2Fake(app) as fake, ConnectionPool() as pool:
            url = fake.base_url + "/v1/chat/completions"
            for _ in range(2):  # the same connection again: the credit was returned
                resp = await pool.request(b"POST", url, JSON, BODY, T, http2=True)
                async with resp:
                    assert [piece async for piece in resp.iter_bytes()] == [b"".join(events)]
            assert fake.connections == 1

    run(loop, main())


@on_loops
def test_cancelling_one_stream_resets_only_that_stream(loop: str) -> None:
    async def main() -> None:
        events = [b"data: %d\n\n" % i for i in range(4)]
        app = FakeOpenAI()
        replies = [Reply(events=events, hold_after=2), Reply(events=events)]

        async def handle(_: object) -> Reply:
            return replies.pop(0)

        app.handle = handle  # type: ignore[assignment,method-assign]
        async with H2Fake(app) as fake, ConnectionPool() as pool:
            url = fake.base_url + "/v1/chat/completions"
            held = await pool.request(b"POST", url, JSON, BODY, T, http2=True)
            chunks = held.iter_bytes()
            got = b""
            while len(got) < len(events[0] + events[1]):  # frames that are in come as one piece
                got += await anext(chunks)
            assert got == events[0] + events[1]
            stuck = asyncio.create_task(anext(chunks))  # nothing more comes: the fake holds
            other = await pool.request(b"POST", url, JSON, BODY, T, http2=True)
            stuck.cancel()
            with pytest.raises(asyncio.CancelledError):
                await stuck
            await held.aclose()
            await fake.wait_for(lambda: fake.resets == 1)
            async with other:
                assert await other.read() == b"".join(events)
            assert fake.connections == 1 and len(fake._conns) == 1

    run(loop, main())


def only_h2(pool: ConnectionPool) -> HTTP2Connection:
    """The pool's one HTTP/2 connection, whose keep-alive ticks a test drives itself."""
    (conn,) = [c for op in pool._origins.values() for c in op.connections]
    assert isinstance(conn, HTTP2Connection)
    return conn


@on_loops
def test_ping_keepalive_timer_sends_pings(loop: str) -> None:
    async def main() -> None:
        async with H2Fake(FakeOpenAI()) as fake, ConnectionPool(ping_interval=0.02) as pool:
            await chat(pool, fake)
            await fake.wait_for(lambda: fake.pings >= 2)

    run(loop, main())


@on_loops
def test_answered_pings_keep_the_connection(loop: str) -> None:
    """Each tick is driven by hand (the interval is an hour): a loop stall on a busy machine
    cannot make an answered PING look unanswered."""

    async def main() -> None:
        async with H2Fake(FakeOpenAI()) as fake, ConnectionPool(ping_interval=3600) as pool:
            await chat(pool, fake)
            conn = only_h2(pool)
            for n in range(1, 4):
                conn._keepalive()
                await fake.wait_for(lambda n=n: fake.pings == n)  # type: ignore[misc]
                await until(lambda: conn._ping_unanswered is None)  # the ACK is in
            await chat(pool, fake)
            assert fake.connections == 1 and not conn.is_closed()

    run(loop, main())


@on_loops
def test_unanswered_ping_closes_the_connection_and_the_next_request_reconnects(loop: str) -> None:
    async def main() -> None:
        async with H2Fake(FakeOpenAI()) as fake, ConnectionPool(ping_interval=3600) as pool:
            await chat(pool, fake)
            conn = only_h2(pool)
            fake.frozen = asyncio.Event()
            conn._keepalive()  # PING; the frozen fake never answers it
            assert not conn.is_closed()
            conn._keepalive()  # the next tick finds it unanswered
            assert conn.is_closed()
            key = f"http://127.0.0.1:{fake.port}"
            await until(lambda: pool.stats().get(key, {}).get("total", 0) == 0)
            fake.frozen.set()
            await chat(pool, fake)
            assert fake.connections == 2

    run(loop, main())


@on_loops
def test_idle_connection_expires_and_a_refused_dial_fails_every_waiter(loop: str) -> None:
    async def main() -> None:
        async with H2Fake(FakeOpenAI()) as fake, ConnectionPool(idle_timeout=0.05) as pool:
            await chat(pool, fake)
            await fake.wait_for(lambda: fake.connections == 1 and not fake._conns)
            assert pool.stats() == {}
            url = f"http://127.0.0.1:{refused_port()}/v1/chat/completions"
            results = await asyncio.gather(
                *[pool.request(b"POST", url, JSON, BODY, T, http2=True) for _ in range(3)],
                return_exceptions=True)
            assert all(isinstance(r, UpstreamConnectError) for r in results), results
            assert pool.stats() == {}

    run(loop, main())


def test_prior_knowledge_to_an_http1_server_is_a_clear_connect_error() -> None:
    async def main() -> None:
        async with FakeOpenAI() as up, ConnectionPool() as pool:
            url = up.origin + "/v1/chat/completions"
            with pytest.raises(UpstreamConnectError, match="no HTTP/2 handshake.*prior knowledge"):
                await pool.request(b"POST", url, JSON, BODY, T, http2=True)
            async with await pool.request(b"POST", url, JSON, BODY, T) as response:
                assert response.status == 200  # the same origin over HTTP/1.1 still works

    run("asyncio", main())


@on_loops
def test_frames_that_arrive_before_our_preface_wait_for_it(loop: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with H2Fake(FakeOpenAI(), tls=tmp_path) as fake:
            context = fake.client_context()
            context.set_alpn_protocols(["h2"])
            origin = Origin("https", "127.0.0.1", fake.port)
            handover = await open_tls(origin, context)
            await until(lambda: bool(handover._pending))  # the server's SETTINGS are in
            conn = HTTP2Connection(origin)
            await conn.connect(5, handover)
            async with await conn.handle_request(b"POST", b"/v1/chat/completions", JSON, BODY,
                                                 T) as stream:
                assert stream.status == 200 and json.loads(await stream.read())["choices"]
            await conn.aclose()

    run(loop, main())


def test_connection_specific_headers_are_not_sent_as_http2_fields() -> None:
    async def main() -> None:
        async with H2Fake(FakeOpenAI()) as fake, ConnectionPool() as pool:
            headers = [*JSON, (b"Connection", b"keep-alive"), (b"TE", b"gzip"),
                       (b"Keep-Alive", b"timeout=5"), (b"X-Custom", b"v")]
            url = fake.base_url + "/v1/chat/completions"
            async with await pool.request(b"POST", url, headers, BODY, T, http2=True) as r:
                assert r.status == 200
                await r.read()
            seen = fake.app.requests[-1].headers
            assert seen["x-custom"] == "v" and seen["content-type"] == "application/json"
            assert not {"connection", "te", "keep-alive", "host"} & set(seen)

    run("asyncio", main())


def test_tls_and_the_http2_handshake_share_one_connect_timeout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TLS takes 0.3 s and the SETTINGS exchange until 0.6 s: each fits in connect=0.5 on its
    own, both together do not."""

    async def slow_tls(*args: object, **kw: object) -> object:
        await asyncio.sleep(0.3)
        return await open_tls(*args, **kw)  # type: ignore[arg-type]

    async def main() -> None:
        monkeypatch.setattr("modelmux.upstream.connector.open_tls", slow_tls)
        async with H2Fake(FakeOpenAI(), tls=tmp_path) as fake:
            fake.frozen = asyncio.Event()  # our SETTINGS go unacknowledged until it is set
            asyncio.get_running_loop().call_later(0.6, fake.frozen.set)
            timeouts = Timeouts(connect=0.5, first_byte=5, read=5, pool=5)
            async with ConnectionPool(ssl_context_factory=fake.client_context) as pool:
                url = fake.base_url + "/v1/chat/completions"
                with pytest.raises(UpstreamTimeout) as caught:
                    await pool.request(b"POST", url, JSON, BODY, timeouts)
                assert caught.value.phase == "connect"

    run("asyncio", main())
