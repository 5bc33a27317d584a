"""The call stage counts each try and records its outcome; the transport only reports what
happened (the requests it sent, a re-send after a 401, the status of the answer head). And the
call stage's ``RelayedStream`` owns a relayed stream's end: pooled when read to the end,
aborted when closed early, a failure after the first byte recorded on the try.

The provider runs against a fake OpenAI server over a real ``ConnectionPool``.
"""

from __future__ import annotations

import json

import pytest

from modelmux.codec.sse import SSEDecoder
from modelmux.config.providers import OpenAICompatibleConfig
from modelmux.errors import Headers, ModelMuxError
from modelmux.pipeline.stream import RelayedStream
from modelmux.pipeline.tries import complete, open_stream, tried
from modelmux.providers.base import CallStats, ChatCall, RetryPolicy
from modelmux.providers.openai_compatible import OpenAICompatibleProvider
from modelmux.schemas.openai_chat import request_decoder
from modelmux.upstream import ConnectionPool
from tests.fakes.openai import FakeOpenAI
from tests.pipeline.test_attempt_records import Recorder
from tests.providers.harness import MESSAGES
from tests.upstream import run, until


class RefreshOnce:
    """Credentials that a 401 refreshes once (as a token source's would)."""

    def __init__(self) -> None:
        self.refreshed = 0

    async def headers(self) -> Headers:
        return [(b"authorization", b"Bearer k%d" % self.refreshed)]

    def refresh(self, sent: Headers) -> bool:
        self.refreshed += 1
        return self.refreshed == 1


async def _no_wait(delay: float) -> None:
    pass


def _call(stream: bool, usage: bool = False) -> ChatCall:
    doc = {"model": "m", "messages": MESSAGES, "stream": stream}
    if usage:
        doc["stream_options"] = {"include_usage": True}
    raw = json.dumps(doc).encode()
    return ChatCall(request_decoder.decode(raw), raw, model="m", public_model="m",
                    completion_id="chatcmpl-1", created=1, request_id="r")


def _provider(up: FakeOpenAI, pool: ConnectionPool, retries: int = 0) -> OpenAICompatibleProvider:
    config = OpenAICompatibleConfig(name="p", models=["m"], base_url=f"{up.origin}/v1")
    return OpenAICompatibleProvider(config, pool, retry=RetryPolicy(max_retries=retries,
                                                                    base=0.0, sleep=_no_wait))


def _idle(pool: ConnectionPool) -> int:
    return sum(r["idle"] for r in pool.stats().values())


def test_the_transport_reports_a_send_and_the_call_stage_counts_it() -> None:
    async def main() -> None:
        async with FakeOpenAI() as up, ConnectionPool() as pool:
            p = _provider(up, pool)
            stats = CallStats()
            await p.upstream.fetch(f"{up.origin}/v1/chat/completions", p.headers,
                                   _call(False).raw, stats)
            assert (stats.attempts, stats.sent, stats.status) == (0, 1, 200)
            tried(stats, None)
            assert (stats.attempts, stats.sent, stats.errors) == (1, 0, [])

    run("asyncio", main())


@pytest.mark.parametrize("stream", [False, True])
def test_a_401_re_send_counts_as_an_attempt_with_its_code(stream: bool) -> None:
    async def main() -> None:
        async with FakeOpenAI() as up, ConnectionPool() as pool:
            up.faults.append("401")
            p = _provider(up, pool)
            p.upstream.auth = RefreshOnce()
            call = _call(stream)
            if stream:
                chunks, _ = await open_stream(p, call)
                await chunks.aclose()
            else:
                await complete(p, call)
            assert len(up.requests) == 2
            stats = call.stats
            assert (stats.attempts, stats.errors) == (2, ["upstream_auth_failed"])
            assert (stats.sent, stats.resent) == (0, None)

    run("asyncio", main())


@pytest.mark.parametrize("stream", [False, True])
def test_each_failed_try_is_counted_once_with_its_code(stream: bool) -> None:
    async def main() -> None:
        async with FakeOpenAI() as up, ConnectionPool() as pool:
            up.faults.extend(["500", "503", "400"])
            p = _provider(up, pool, retries=5)
            call = _call(stream)
            with pytest.raises(ModelMuxError):
                if stream:
                    await open_stream(p, call)
                else:
                    await complete(p, call)
            stats = call.stats
            assert stats.attempts == len(up.requests) == 3
            assert stats.errors == ["upstream_server_error", "upstream_server_error",
                                    "invalid_request"], stats.errors
            assert stats.retries == 2

    run("asyncio", main())


def test_a_relayed_stream_read_to_its_end_pools_its_connection_and_counts_its_usage() -> None:
    async def main() -> None:
        async with FakeOpenAI() as up, ConnectionPool() as pool:
            call = _call(True, usage=True)
            chunks, first = await open_stream(_provider(up, pool), call)
            assert type(chunks) is RelayedStream
            rest = [piece async for piece in chunks]
            events = SSEDecoder().feed(first + b"".join(rest))
            assert events[-1].data == b"[DONE]"
            await until(lambda: _idle(pool) == 1)
            stats = call.stats
            assert stats.tokens is not None and stats.errors == []
            assert 0 < stats.wait_ns <= stats.total_ns

    run("asyncio", main())


def test_closing_a_relayed_stream_mid_way_aborts_the_upstream() -> None:
    async def main() -> None:
        async with FakeOpenAI() as up, ConnectionPool() as pool:
            up.faults.append("hold")  # four events, then nothing until the client leaves
            ended: list[str | None] = []
            chunks, _ = await open_stream(_provider(up, pool), _call(True))
            assert type(chunks) is RelayedStream
            chunks.on_end = ended.append
            await chunks.aclose()
            assert ended == ["cancelled"]
            await until(lambda: pool.stats() == {})  # closed, not pooled
            assert [piece async for piece in chunks] == []

    run("asyncio", main())


class Sink:
    """Keeps what is pushed; never falls behind."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    def push(self, data: bytes) -> bool:
        self.pieces.append(data)
        return True

    async def drain(self) -> None:
        pass


@pytest.mark.parametrize("spliced", [False, True], ids=["pieces", "spliced"])
def test_a_stream_cut_after_its_first_byte_is_recorded_on_its_try(spliced: bool) -> None:
    async def main() -> None:
        async with FakeOpenAI() as up, ConnectionPool() as pool:
            up.faults.append("reset")  # four events, then a reset
            up.split = lambda data: [data[:len(data) // 2], data[len(data) // 2:]]
            call = _call(True)
            recorder = Recorder()
            call.stats.watch = recorder
            chunks, first = await open_stream(_provider(up, pool), call)
            assert type(chunks) is RelayedStream
            sink = Sink()
            if spliced:
                await chunks.splice(sink)
            rest = [piece async for piece in chunks]
            body = first + b"".join(sink.pieces) + b"".join(rest)
            last = SSEDecoder().feed(body)[-1]
            assert json.loads(last.data)["error"]["code"] == "upstream_closed"
            assert call.stats.errors == ["upstream_closed"]
            assert call.stats.attempts == 1
            assert recorder.events[-2:] == [("done", 200, None), ("done", 0, "upstream_closed")]
            assert pool.stats() == {}

    run("asyncio", main())
