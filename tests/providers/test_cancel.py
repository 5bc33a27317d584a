"""A client that goes away cancels the upstream request, and that connection is closed, not pooled.

The fakes hold their response open and count a peer that leaves; the gateway's pool must end
with no connection to that origin. A completed stream, by contrast, leaves its connection idle
in the pool for the next request.
"""

from __future__ import annotations

import json
import socket
import struct

import pytest

from tests.fakes.claude import FakeClaude
from tests.fakes.http import FakeServer
from tests.fakes.openai import FakeOpenAI
from tests.providers.harness import MESSAGES, collect, gateway
from tests.server.helpers import connect
from tests.upstream import on_loops, run, until


def _config(up: FakeServer, kind: str) -> str:
    if kind == "openai":
        return (f'[[provider]]\nname = "p"\ntype = "openai_compatible"\nmodels = ["m"]\n'
                f'base_url = "{up.origin}/v1"\n')
    return (f'[[provider]]\nname = "p"\ntype = "anthropic"\nmodels = ["m"]\n'
            f'api_key = "sk-ant-test"\nbase_url = "{up.origin}"\n')


def _fake(kind: str) -> FakeOpenAI | FakeClaude:
    return FakeOpenAI() if kind == "openai" else FakeClaude()


def _request(stream: bool) -> bytes:
    body = json.dumps({"model": "m", "messages": MESSAGES, "stream": stream}).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n" % len(body) + body)


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
@pytest.mark.parametrize("when", ["mid_stream", "before_head"])
@on_loops
def test_client_disconnect_closes_the_upstream_connection(loop: str, when: str, kind: str) -> None:
    async def main() -> None:
        async with _fake(kind) as up, gateway(_config(up, kind)) as gw:
            up.faults.append("hold" if when == "mid_stream" else "stall")
            reader, writer = await connect(gw.port)
            writer.write(_request(stream=True))
            if when == "mid_stream":
                assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
                assert b"data: " in await reader.readuntil(b"\n\n")
            else:
                await up.wait_for(lambda: len(up.requests) == 1)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            await up.wait_for(lambda: up.peer_left == 1)
            await until(lambda: gw.app.pool.stats() == {})
            assert len(up.requests) == 1

    run(loop, main())


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
def test_finished_streams_leave_their_connection_pooled(kind: str) -> None:
    async def main() -> None:
        async with _fake(kind) as up, gateway(_config(up, kind)) as gw, gw.client() as client:
            for _ in range(3):
                await collect(await client.chat.completions.create(model="m", messages=MESSAGES,
                                                                   stream=True))
                await client.chat.completions.create(model="m", messages=MESSAGES)
            assert up.connections == 1
            (stats,) = gw.app.pool.stats().values()
            assert stats == {"total": 1, "idle": 1, "in_use": 0, "waiters": 0}

    run("asyncio", main())


def test_mid_stream_reset_aborts_and_does_not_pool() -> None:
    async def main() -> None:
        async with FakeOpenAI() as up, gateway(_config(up, "openai")) as gw:
            up.faults.append("reset")
            async with gw.client() as client:
                stream = await client.chat.completions.create(model="m", messages=MESSAGES,
                                                              stream=True)
                with pytest.raises(Exception, match="connection"):
                    await collect(stream)
            assert gw.app.pool.stats() == {}

    run("asyncio", main())
