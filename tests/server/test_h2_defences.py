"""HTTP/2 defences: refused streams, rapid reset, control and CONTINUATION floods, big header
lists, header blocks that never end, idle timeout."""

from __future__ import annotations

import asyncio

import h2.events
import h2.settings
import httpx2
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import ContinuationFrame, HeadersFrame

from modelmux.config.settings import H2Settings
from modelmux.server.exchange import Exchange
from tests.server.h2_helpers import RawH2, serving
from tests.server.helpers import DEADLINE
from tests.server.test_h2 import _goaway_code, echo


def test_streams_over_the_limit_are_refused(run) -> None:
    async def main() -> None:
        release = asyncio.Event()

        async def wait(exchange: Exchange) -> None:
            await release.wait()
            await exchange.respond(200, [], b"ok")

        async with serving(wait, http2=H2Settings(max_concurrent_streams=2)) as (_, port):
            client = await RawH2.open(port)  # has not seen the server's SETTINGS yet
            sids = [client.request(f"/{i}") for i in range(3)]
            client.flush()
            reset = await client.read_until(h2.events.StreamReset, sids[2])
            assert reset is not None and reset.error_code == ErrorCodes.REFUSED_STREAM  # type: ignore[attr-defined]
            release.set()
            for sid in sids[:2]:
                assert await client.read_until(h2.events.StreamEnded, sid) is not None
            await client.close()

    run(main())


def test_rapid_reset_gets_enhance_your_calm_and_others_are_served(run) -> None:
    async def main() -> None:
        async with serving(echo, http2=H2Settings(max_resets_per_second=50)) as (_, port):
            client = await RawH2.open(port)
            for _ in range(20):  # under the budget: still served
                client.conn.reset_stream(client.request("/"), ErrorCodes.CANCEL)
            sid = client.request("/after")
            client.flush()
            assert await client.read_until(h2.events.StreamEnded, sid) is not None
            for _ in range(200):
                client.conn.reset_stream(client.request("/"), ErrorCodes.CANCEL)
            client.flush()
            assert await _goaway_code(client) == ErrorCodes.ENHANCE_YOUR_CALM
            await client.close()
            async with httpx2.AsyncClient(http1=False, http2=True, timeout=DEADLINE) as other:
                assert (await other.get(f"http://127.0.0.1:{port}/ok")).status_code == 200

    run(main())


def test_ping_and_settings_floods_get_enhance_your_calm(run) -> None:
    async def main() -> None:
        async with serving(echo) as (_, port):
            for flood in ("ping", "settings"):
                client = await RawH2.open(port)
                for i in range(1500):
                    if flood == "ping":
                        client.conn.ping(i.to_bytes(8, "big"))
                    else:
                        client.conn.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: 0})
                client.flush()
                assert await _goaway_code(client) == ErrorCodes.ENHANCE_YOUR_CALM
                await client.close()

    run(main())


def test_oversized_header_list_is_refused(run) -> None:
    async def main() -> None:
        async with serving(echo, http2=H2Settings(max_header_list_size=4096)) as (_, port):
            client = await RawH2.open(port)
            sid = client.conn.get_next_available_stream_id()
            client.conn.send_headers(sid, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                                           (":authority", "t"), ("x-big", "v" * 8000)], end_stream=True)
            client.flush()
            assert await _goaway_code(client) == ErrorCodes.ENHANCE_YOUR_CALM
            await client.close()

    run(main())


def test_idle_connection_gets_goaway_and_close(run) -> None:
    async def main() -> None:
        async with serving(echo, keepalive_timeout=0.2) as (_, port):
            client = await RawH2.open(port)
            assert await _goaway_code(client) == ErrorCodes.NO_ERROR
            assert await asyncio.wait_for(client.reader.read(), DEADLINE) == b""
            await client.close()

    run(main())


def test_oversized_body_gets_413_and_the_connection_keeps_serving(run) -> None:
    async def main() -> None:
        async with (serving(echo, max_body_bytes=1000) as (_, port),
                    httpx2.AsyncClient(http1=False, http2=True, timeout=DEADLINE) as client):
            r = await client.post(f"http://127.0.0.1:{port}/big", content=b"b" * 100_000)
            assert r.status_code == 413
            r = await client.post(f"http://127.0.0.1:{port}/small", content=b"ok")
            assert r.status_code == 200 and r.json()["size"] == 2

    run(main())


def _open_header_block(client: RawH2, continuations: int, size: int) -> None:
    """HEADERS without END_HEADERS, then ``continuations`` CONTINUATION frames of ``size`` bytes
    none of which ends the block."""
    sid = client.conn.get_next_available_stream_id()
    block = client.conn.encoder.encode([(":method", "GET"), (":path", "/"), (":scheme", "http"),
                                        (":authority", "t")])
    client.writer.write(HeadersFrame(sid, data=block, flags=["END_STREAM"]).serialize())
    for _ in range(continuations):
        client.writer.write(ContinuationFrame(sid, data=b"\x00" * size).serialize())


@pytest.mark.parametrize(("continuations", "size", "why"), [
    (50, 1, "too many CONTINUATION frames"),  # under h2's own backlog of 64: ours cuts it
    (8, 16000, "header block too large"),
], ids=["many-frames", "many-bytes"])
def test_continuation_flood_gets_enhance_your_calm(run, caplog: pytest.LogCaptureFixture,
                                                   continuations: int, size: int,
                                                   why: str) -> None:
    async def main() -> None:
        async with serving(echo) as (_, port):
            client = await RawH2.open(port)
            await client.read_until(h2.events.RemoteSettingsChanged)  # our ACK goes out first
            _open_header_block(client, continuations, size)
            assert await _goaway_code(client) == ErrorCodes.ENHANCE_YOUR_CALM
            await client.close()
            async with httpx2.AsyncClient(http1=False, http2=True, timeout=DEADLINE) as other:
                assert (await other.get(f"http://127.0.0.1:{port}/ok")).status_code == 200

    with caplog.at_level("INFO", logger="modelmux.server"):
        run(main())
    assert why in caplog.text


def test_header_block_that_never_ends_is_cut_after_the_header_timeout(run) -> None:
    async def main() -> None:
        async with serving(echo, header_timeout=0.2, keepalive_timeout=30) as (_, port):
            client = await RawH2.open(port)
            await client.read_until(h2.events.RemoteSettingsChanged)  # our ACK goes out first
            _open_header_block(client, 3, 10)  # under every budget, but never finished
            assert await _goaway_code(client) == ErrorCodes.ENHANCE_YOUR_CALM
            await client.close()

    run(main())
