"""The event stream through a real server in this process, so the publisher's state can be
looked at: sampling runs while a client reads the stream and stops when it hangs up."""

from __future__ import annotations

import asyncio

import msgspec

from modelmux.api.app import App
from modelmux.config.schema import Config
from tests.conftest import Runner
from tests.server.helpers import DEADLINE, connect, running

CONFIG = {"admin": {"key": "k"}, "provider": [{"type": "mock", "name": "m", "models": ["mock"]}]}


async def settle(ready: object, what: str) -> None:
    """Yield to the loop until ``ready()``: bounded in steps and time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not ready():  # type: ignore[operator]
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_sampling_starts_with_a_reader_and_stops_when_it_leaves(run: Runner) -> None:
    async def main() -> None:
        app = App(msgspec.convert(CONFIG, Config))
        try:
            assert not app.events.running  # built, serving, nobody watching: no task
            async with running(app) as (_, port):
                reader, writer = await connect(port)
                writer.write(b"GET /admin/events HTTP/1.1\r\nHost: t\r\n"
                             b"Authorization: Bearer k\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
                assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
                await asyncio.wait_for(reader.readuntil(b"event: snapshot\n"), DEADLINE)
                assert app.events.running and app.events.subscribers == 1
                writer.close()
                await settle(lambda: not app.events.running, "the publisher to stop")
                assert app.events.subscribers == 0
        finally:
            await app.aclose()

    run(main())


def test_shutdown_ends_open_streams(run: Runner) -> None:
    async def main() -> None:
        app = App(msgspec.convert(CONFIG, Config))
        try:
            async with running(app) as (_, port):
                reader, writer = await connect(port)
                writer.write(b"GET /admin/events HTTP/1.1\r\nHost: t\r\n"
                             b"Authorization: Bearer k\r\n\r\n")
                await asyncio.wait_for(reader.readuntil(b"event: snapshot\n"), DEADLINE)
                app.events.close()  # what serve does before draining
                await asyncio.wait_for(reader.readuntil(b"\r\n0\r\n\r\n"), DEADLINE)  # clean end
                writer.close()
                await settle(lambda: app.events.subscribers == 0, "the stream to unsubscribe")
        finally:
            await app.aclose()

    run(main())


def test_the_stream_says_no_cache_when_the_cache_is_off_and_counts_it_when_on() -> None:
    off = App(msgspec.convert(CONFIG, Config))
    on = App(msgspec.convert({**CONFIG, "cache": {"enabled": True}}, Config))
    try:
        assert off.events.snapshot()["cache"] is None
        assert on.events.snapshot()["cache"] == {"hits": 0, "misses": 0, "hit_ratio": None}
    finally:
        asyncio.run(off.aclose())
        asyncio.run(on.aclose())
