"""A stream spliced to the client: ``pipeline.stream.RelayedStream`` given a sink writes the rest.

After the first chunk, a ``Sink`` handed to ``splice`` takes every later chunk from the
upstream connection's read callback; the provider only describes the stream. These tests drive the OpenAI-compatible provider
against a loopback upstream that streams one HTTP chunk per event, with a stand-in sink (slow,
gone) and through the gateway with a slow raw-socket client: nothing is lost or reordered, a
slow client stops the upstream, a client that left closes it, a cut upstream ends the stream
with an error event.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from typing import Self

import h2.events
import pytest

from modelmux.codec.sse import SSEDecoder
from modelmux.config.providers import OpenAICompatibleConfig
from modelmux.pipeline.stream import RelayedStream
from modelmux.providers.base import ChatCall
from modelmux.providers.openai_compatible import OpenAICompatibleProvider
from modelmux.schemas.openai_chat import request_decoder
from modelmux.server.exchange import ClientDisconnected
from modelmux.upstream import ConnectionPool
from tests.providers.harness import MESSAGES, gateway
from tests.server.h2_helpers import RawH2
from tests.server.helpers import connect
from tests.upstream import on_loops, run, until


def event(i: int, text: str) -> bytes:
    doc = {"id": "chatcmpl-u", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": {"content": f"{i}:{text}"}, "finish_reason": None}]}
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


class Upstream:
    """Streams ``count`` events (one HTTP chunk each) and ``[DONE]``, counting what the socket
    took; ``gap`` seconds between events, or none; ``cut_after`` resets the connection."""

    def __init__(self, count: int, *, text: str = "x", gap: float | None = 0.001,
                 cut_after: int | None = None) -> None:
        self.count, self.text, self.gap, self.cut_after = count, text, gap, cut_after
        self.written = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def origin(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                         b"transfer-encoding: chunked\r\n\r\n")
            for i in range(self.count):
                if i == self.cut_after:
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                piece = event(i, self.text)
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
                self.written += 1
                if self.gap is not None:
                    await asyncio.sleep(self.gap)
            writer.write(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")
            await writer.drain()
            await reader.read()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


class StandInSink:
    """What ``Exchange.sink`` gives the relay: keeps pieces; blocks while ``open`` is clear;
    after ``gone_after`` pushes it behaves as a client that left."""

    def __init__(self, gone_after: int | None = None) -> None:
        self.pieces: list[bytes] = []
        self.open = asyncio.Event()
        self.open.set()
        self.gone_after = gone_after
        self.error: ClientDisconnected | None = None

    def push(self, data: bytes) -> bool:
        if self.gone_after is not None and len(self.pieces) >= self.gone_after:
            self.error = ClientDisconnected()
            return False
        self.pieces.append(data)
        return self.open.is_set()

    async def drain(self) -> None:
        if self.error is not None:
            raise self.error
        await self.open.wait()


def _call() -> ChatCall:
    raw = json.dumps({"model": "m", "messages": MESSAGES, "stream": True}).encode()
    return ChatCall(request_decoder.decode(raw), raw, model="m", public_model="m",
                    completion_id="chatcmpl-1", created=1, request_id="r")


def _stream(up: Upstream, pool: ConnectionPool) -> RelayedStream:
    config = OpenAICompatibleConfig(name="p", models=["m"], base_url=f"{up.origin}/v1")
    call = _call()
    return RelayedStream(OpenAICompatibleProvider(config, pool).stream(call), call.stats)


def _contents(data: bytes) -> list[str]:
    out = []
    for ev in SSEDecoder().feed(data):
        out.append("[DONE]" if ev.data == b"[DONE]" else
                   json.loads(ev.data)["choices"][0]["delta"]["content"])
    return out


async def _rest(chunks: RelayedStream, sink: StandInSink) -> list[bytes]:
    """Hand the sink over; collect what the stream still reads as pieces."""
    await chunks.splice(sink)
    return [piece async for piece in chunks]


@on_loops
def test_the_spliced_rest_of_the_stream_reaches_the_sink_and_pools_the_connection(loop: str) -> None:
    async def main() -> None:
        async with Upstream(40) as up, ConnectionPool() as pool:
            chunks = _stream(up, pool)
            first = await anext(chunks)
            sink = StandInSink()
            assert await _rest(chunks, sink) == []  # everything went through the sink
            assert len(sink.pieces) > 1  # one push per upstream read, not one piece at the end
            want = [f"{i}:x" for i in range(40)] + ["[DONE]"]
            assert _contents(first + b"".join(sink.pieces)) == want
            await until(lambda: sum(r["idle"] for r in pool.stats().values()) == 1)

    run(loop, main())


@on_loops
def test_a_slow_client_stops_the_upstream_and_loses_nothing(loop: str) -> None:
    async def main() -> None:
        count = 24_000  # ~25 MB: more than the socket buffers and the read buffer hold
        async with Upstream(count, text="y" * 1000, gap=None) as up, ConnectionPool() as pool:
            chunks = _stream(up, pool)
            first = await anext(chunks)
            sink = StandInSink()
            sink.open.clear()  # the client reads nothing for now
            rest = asyncio.ensure_future(_rest(chunks, sink))
            seen = -1
            while seen != up.written:  # until the upstream can write no more
                seen = up.written
                await asyncio.sleep(0.2)
            assert up.written < count // 2, up.written
            assert len(sink.pieces) == 1  # nothing pushed after the client fell behind
            sink.open.set()
            assert await rest == []
            contents = _contents(first + b"".join(sink.pieces))
            assert contents == [f"{i}:{'y' * 1000}" for i in range(count)] + ["[DONE]"]

    run(loop, main(), timeout=60.0)


@on_loops
def test_a_client_that_left_ends_the_splice_and_closes_the_upstream(loop: str) -> None:
    async def main() -> None:
        async with Upstream(200, gap=0.002) as up, ConnectionPool() as pool:
            chunks = _stream(up, pool)
            await anext(chunks)
            with pytest.raises(ClientDisconnected):
                await _rest(chunks, StandInSink(gone_after=2))
            await until(lambda: pool.stats() == {})
            assert up.written < 200

    run(loop, main())


@on_loops
def test_an_upstream_cut_mid_splice_ends_with_an_error_event(loop: str) -> None:
    async def main() -> None:
        async with Upstream(50, cut_after=10) as up, ConnectionPool() as pool:
            chunks = _stream(up, pool)
            first = await anext(chunks)
            sink = StandInSink()
            yielded = await _rest(chunks, sink)
            assert _contents(first + b"".join(sink.pieces)) == [f"{i}:x" for i in range(10)]
            (last,) = yielded
            (error,) = SSEDecoder().feed(last)
            assert json.loads(error.data)["error"]["code"] == "upstream_closed"
            assert pool.stats() == {}

    run(loop, main())


def test_a_slow_socket_client_gets_the_whole_spliced_stream_through_the_gateway() -> None:
    """The server side of the splice: the client's socket fills, ``Sink.push`` says stop,
    the relay waits for the client, and every event still arrives, in order, once."""
    async def main() -> None:
        count = 40_000  # ~24 MB
        async with Upstream(count, text="z" * 500, gap=None) as up, gateway(
                f'[[provider]]\nname = "p"\ntype = "openai_compatible"\nmodels = ["m"]\n'
                f'base_url = "{up.origin}/v1"\n') as gw:
            reader, writer = await connect(gw.port)
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            body = json.dumps({"model": "m", "messages": MESSAGES, "stream": True}).encode()
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
                         b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                         % (len(body), body))
            seen = -1
            while seen != up.written:  # nothing is read: the buffers fill, the upstream stops
                seen = up.written
                await asyncio.sleep(0.2)
            assert up.written < count // 2, up.written
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head
            payload = bytearray()
            while True:  # chunked framing: size line, data, CRLF
                size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
                if size == 0:
                    break
                payload += (await reader.readexactly(size + 2))[:-2]
            writer.close()
            contents = _contents(bytes(payload))
            assert contents == [f"{i}:{'z' * 500}" for i in range(count)] + ["[DONE]"]

    run("uvloop", main(), timeout=60.0)


def test_an_http2_client_that_stops_acknowledging_stops_the_spliced_upstream() -> None:
    """Over HTTP/2 to the client the sink stops at the client's flow-control window: the
    splice waits, the upstream is held, and every event arrives once the client reads."""
    async def main() -> None:
        count = 40_000  # ~24 MB
        async with Upstream(count, text="w" * 500, gap=None) as up, gateway(
                f'[[provider]]\nname = "p"\ntype = "openai_compatible"\nmodels = ["m"]\n'
                f'base_url = "{up.origin}/v1"\n') as gw:
            client = await RawH2.open(gw.port)
            body = json.dumps({"model": "m", "messages": MESSAGES, "stream": True}).encode()
            sid = client.conn.get_next_available_stream_id()
            client.conn.send_headers(sid, [(":method", "POST"), (":path", "/v1/chat/completions"),
                                           (":scheme", "http"), (":authority", "t"),
                                           ("content-type", "application/json")])
            client.conn.send_data(sid, body, end_stream=True)
            client.flush()
            seen = -1
            while seen != up.written:  # no WINDOW_UPDATE yet: 64 KiB at most reach us
                seen = up.written
                await asyncio.sleep(0.2)
            assert up.written < count // 2, up.written
            payload = bytearray()
            while True:
                data = await asyncio.wait_for(client.reader.read(65536), 10)
                assert data, "the connection closed before the stream ended"
                ended = False
                for ev in client.conn.receive_data(data):
                    if isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                        payload += ev.data
                        client.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                    ended = ended or (isinstance(ev, h2.events.StreamEnded)
                                      and ev.stream_id == sid)
                client.flush()
                if ended:
                    break
            await client.close()
            contents = _contents(bytes(payload))
            assert contents == [f"{i}:{'w' * 500}" for i in range(count)] + ["[DONE]"]

    run("uvloop", main(), timeout=60.0)
