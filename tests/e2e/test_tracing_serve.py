"""``modelmux serve`` as a real process exporting traces to a loopback OTLP/HTTP collector, in
front of a fake OpenAI-compatible upstream that records the ``traceparent`` it receives."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk.trace")
pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")

from tests.e2e.proc import ServeProcess, serve_config
from tests.fakes.answers import Answer
from tests.fakes.http import Reply, Request
from tests.fakes.openai import FakeOpenAI
from tests.fakes.otlp import CLIENT, SERVER, Collector

ANSWER = Answer(text="traced hello", prompt_tokens=11, completion_tokens=3)
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{CLIENT_TRACE}-b7ad6b7169203331-01"


class Upstream(FakeOpenAI):
    def __init__(self) -> None:
        super().__init__(answer=ANSWER)
        self.traceparents: list[str] = []

    async def handle(self, request: Request) -> Reply:
        self.traceparents.append(request.headers.get("traceparent", ""))
        return await super().handle(request)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """The fake upstream on its own event loop thread, for the whole test."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake = Upstream()
    asyncio.run_coroutine_threadsafe(fake.__aenter__(), loop).result(10)
    try:
        yield fake
    finally:
        done: Future[None] = asyncio.run_coroutine_threadsafe(fake.__aexit__(None, None, None),
                                                              loop)
        done.result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _post(proc: ServeProcess, payload: dict[str, object], headers: dict[str, str]) -> bytes:
    conn = http.client.HTTPConnection(proc.host, proc.port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", body=json.dumps(payload).encode(),
                     headers={"content-type": "application/json", **headers})
        response = conn.getresponse()
        assert response.status == 200
        return response.read()
    finally:
        conn.close()


ACCESS_FIELDS = {"request_id", "client", "key", "method", "path", "status", "model", "provider",
                 "stream_mode", "attempts", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "ttft_ms",
                 "overhead_ms", "bytes_received", "bytes_sent", "completed", "trace_id"}


def test_serve_exports_spans_for_json_and_stream(tmp_path: Path, upstream: Upstream) -> None:
    """Also: the JSON access log parses, and names each request's trace."""
    with Collector() as collector:
        proc = serve_config(tmp_path, f"""
[[provider]]
name = "up"
type = "openai_compatible"
base_url = "{upstream.origin}/v1"
models = ["gpt-t"]

[logging]
format = "json"
file = "{tmp_path / 'modelmux.log'}"

[telemetry]
enabled = true
endpoint = "{collector.endpoint}"
service_name = "modelmux-e2e"
batch_delay_ms = 20
""")
        try:
            messages = [{"role": "user", "content": "hi"}]
            _post(proc, {"model": "gpt-t", "messages": messages}, {"traceparent": TRACEPARENT})
            streamed = _post(proc, {"model": "gpt-t", "messages": messages, "stream": True}, {})
            assert streamed.rstrip().endswith(b"data: [DONE]")
            spans = collector.wait_for(6)
        finally:
            assert proc.stop() == 0
    servers = [s for s in spans if s.kind == SERVER]
    calls = [s for s in spans if s.name == "chat gpt-t"]
    tries = [s for s in spans if s.name == "POST" and s.kind == CLIENT]
    assert len(servers) == len(calls) == len(tries) == 2
    assert {s.resource["service.name"] for s in spans} == {"modelmux-e2e"}
    continued = next(s for s in servers if s.trace_id == CLIENT_TRACE)
    assert continued.parent_id == "b7ad6b7169203331"
    fresh = next(s for s in servers if s is not continued)
    assert fresh.parent_id == "" and fresh.trace_id != CLIENT_TRACE
    for server in servers:
        call = next(c for c in calls if c.parent_id == server.span_id)
        attempt = next(t for t in tries if t.parent_id == call.span_id)
        assert call.attributes["gen_ai.provider.name"] == "openai"
        assert call.attributes["gen_ai.response.finish_reasons"] == ["stop"]
        assert attempt.attributes["http.response.status_code"] == 200
        assert f"-{server.trace_id}-{attempt.span_id}-" in "|".join(upstream.traceparents)
    json_call = next(c for c in calls if c.trace_id == CLIENT_TRACE)
    assert json_call.attributes["gen_ai.usage.input_tokens"] == ANSWER.prompt_tokens
    assert json_call.attributes["gen_ai.usage.output_tokens"] == ANSWER.completion_tokens
    entries = [json.loads(line) for line in
               (tmp_path / "modelmux.log").read_text().splitlines()]
    access = [e for e in entries if e["logger"] == "modelmux.access"]
    assert len(access) == 2 and all(ACCESS_FIELDS <= set(e) for e in access)
    assert {e["trace_id"] for e in access} == {s.trace_id for s in servers}
    assert [(e["status"], e["model"], e["provider"]) for e in access] == [(200, "gpt-t", "up")] * 2
    assert [e["stream_mode"] for e in access] == ["never", "standard"]
    assert access[0]["tokens_in"] == ANSWER.prompt_tokens and access[0]["ttft_ms"] is None
    assert access[1]["ttft_ms"] > 0 and all(e["bytes_received"] > 0 for e in access)
