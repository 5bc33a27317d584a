"""The call stage opens every upstream try and records its outcome; the transport only says
what it sends. A recording watch stands in for tracing; the provider runs against a fake
OpenAI server (or a refused port) over a real ``ConnectionPool``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelmux.config.providers import OpenAICompatibleConfig
from modelmux.errors import Headers, ModelMuxError
from modelmux.pipeline.tries import complete, open_stream
from modelmux.providers.base import ChatCall, RetryPolicy
from modelmux.providers.openai_compatible import OpenAICompatibleProvider
from modelmux.schemas.openai_chat import request_decoder
from modelmux.upstream import ConnectionPool
from modelmux.upstream.retry import Backoff
from tests.fakes.openai import FakeOpenAI
from tests.providers.harness import MESSAGES
from tests.upstream import refused_port, run

TRACE = [(b"traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")]


class Recorder:
    """An ``AttemptWatch`` that lists what it is told, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def attempt(self, resend: int) -> None:
        self.events.append(("attempt", resend))

    def sending(self, url: str, headers: Headers, body: bytes) -> Headers:
        self.events.append(("sending", url.rsplit("/", 1)[1]))
        return TRACE

    def attempt_done(self, status: int, error: str | None) -> None:
        self.events.append(("done", status, error))


def watched(stream: bool = False) -> tuple[ChatCall, Recorder]:
    raw = json.dumps({"model": "m", "messages": MESSAGES, "stream": stream}).encode()
    call = ChatCall(request_decoder.decode(raw), raw, model="m", public_model="m",
                    completion_id="chatcmpl-1", created=1, request_id="r")
    recorder = Recorder()
    call.stats.watch = recorder
    return call, recorder


async def _no_wait(delay: float) -> None:
    pass


def provider(origin: str, pool: ConnectionPool) -> OpenAICompatibleProvider:
    config = OpenAICompatibleConfig(name="p", models=["m"], base_url=f"{origin}/v1")
    return OpenAICompatibleProvider(config, pool, retry=RetryPolicy(max_retries=1, base=0.0,
                                                                     sleep=_no_wait))


@pytest.mark.parametrize("stream", [False, True])
def test_each_try_is_opened_and_closed_by_the_call_stage(stream: bool) -> None:
    async def main() -> None:
        async with FakeOpenAI() as up, ConnectionPool() as pool:
            up.faults.append("500")
            call, recorder = watched(stream)
            p = provider(up.origin, pool)
            if stream:
                chunks, _ = await open_stream(p, call)
                await chunks.aclose()
            else:
                await complete(p, call)
            assert recorder.events == [
                ("attempt", 0), ("sending", "completions"), ("done", 500, "upstream_server_error"),
                ("attempt", 1), ("sending", "completions"), ("done", 200, None)]
            assert up.requests[-1].headers["traceparent"] == TRACE[0][1].decode()  # as asked

    run("asyncio", main())


def test_a_refused_connection_is_a_try_with_no_status() -> None:
    async def main() -> None:
        async with ConnectionPool() as pool:
            call, recorder = watched()
            with pytest.raises(ModelMuxError):
                await complete(provider(f"http://127.0.0.1:{refused_port()}", pool), call)
            assert recorder.events == [
                ("attempt", 0), ("sending", "completions"), ("done", 0, "upstream_connect_error"),
                ("attempt", 1), ("sending", "completions"), ("done", 0, "upstream_connect_error")]

    run("asyncio", main())


def test_one_backoff_rule_for_retries_and_fallback() -> None:
    exponential, constant = Backoff(0.5, 30.0), Backoff(0.1, 2.0, constant=True)
    assert [exponential.delay(n, lambda: 1.0) for n in range(3)] == [0.5, 1.0, 2.0]
    assert exponential.delay(0, lambda: 0.0, retry_after=3.0) == 3.0
    assert exponential.delay(0, lambda: 0.0, retry_after=31.0) == 0.0  # over the cap: ignored
    assert [constant.delay(n, lambda: 1.0) for n in range(3)] == [0.1, 0.1, 0.1]
    assert constant.delay(5, lambda: 0.0) == pytest.approx(0.05)
    assert RetryPolicy(base=0.25, cap=4.0).backoff == Backoff(0.25, 4.0)


class Span:
    """A ``CallSpan`` that lists the try events it gets."""

    recording = True

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def attempt(self, url: str, resend: int) -> Headers:
        self.events.append(("attempt", url, resend))
        return TRACE

    def attempt_status(self, status: int) -> None:
        self.events.append(("status", status))

    def attempt_failed(self, code: str) -> None:
        self.events.append(("failed", code))


def test_a_try_has_a_span_only_once_it_sends() -> None:
    from modelmux.observability.calls import CallWatch

    span = Span()
    watch = CallWatch(span, None, "r")  # type: ignore[arg-type]
    watch.attempt(0)
    watch.attempt_done(0, "internal_error")  # sent nothing (a mock, an auth failure): no span
    watch.attempt(1)
    assert watch.sending("http://u/a", [], b"") == TRACE
    assert watch.sending("http://u/a", [], b"") == TRACE  # a 401 re-send: the same span
    watch.attempt_done(503, "service_unavailable")
    watch.attempt(2)
    watch.sending("http://u/b", [], b"")
    watch.attempt_done(200, "upstream_closed")  # cut short while reading the body
    assert span.events == [("attempt", "http://u/a", 1), ("status", 503),
                           ("attempt", "http://u/b", 2), ("status", 200),
                           ("failed", "upstream_closed")]
