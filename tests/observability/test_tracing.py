"""OpenTelemetry tracing end to end in process: the app on loopback, fake upstreams, and a real
OTLP/HTTP collector decoding the exported protobuf. Parent/child links, GenAI attributes, the
``traceparent`` the upstream sees, and a client's ``traceparent`` continued."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import pytest

pytest.importorskip("opentelemetry.sdk.trace")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http.trace_exporter")

from modelmux.config.schema import Config, TelemetryConfig
from tests.conftest import Runner
from tests.fakes.claude import FakeClaude
from tests.fakes.http import FakeServer, Reply, Request, random_pieces
from tests.fakes.openai import FakeOpenAI
from tests.fakes.otlp import CLIENT, SERVER, Collector, Span
from tests.observability.helpers import (
    ANSWER,
    ANTHROPIC_KEY,
    CLAUDE_ANSWER,
    UPSTREAM_KEY,
    chat_body,
    gateway,
    request,
    scrape,
    value,
)

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"
ERROR = 2  # Status.StatusCode.STATUS_CODE_ERROR


class _KeepsTraceHeaders(FakeServer):
    """Keeps the trace headers of every request it gets (in ``seen``)."""

    seen: list[dict[str, str]]

    async def handle(self, request: Request) -> Reply:
        self.seen.append({k: v for k, v in request.headers.items() if "trace" in k})
        return await super().handle(request)


class TracedOpenAI(_KeepsTraceHeaders, FakeOpenAI):
    def __init__(self) -> None:
        super().__init__(api_key=UPSTREAM_KEY, answer=ANSWER)
        self.seen = []


class TracedClaude(_KeepsTraceHeaders, FakeClaude):
    def __init__(self) -> None:
        super().__init__(api_key=ANTHROPIC_KEY, answer=CLAUDE_ANSWER)
        self.seen = []


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    with Collector() as running_collector:
        yield running_collector


@contextlib.asynccontextmanager
async def traced(collector: Collector, **settings: Any,
                 ) -> AsyncIterator[tuple[int, TracedOpenAI, TracedClaude]]:
    """The gateway exporting to ``collector`` (``settings`` adjust ``[telemetry]``)."""
    telemetry = TelemetryConfig(enabled=True, endpoint=collector.endpoint, batch_delay_ms=20,
                                **settings)

    def change(config: Config) -> Config:
        return msgspec.structs.replace(config, telemetry=telemetry)

    async with gateway(TracedOpenAI(), claude=TracedClaude(), change=change) as (
            _, port, openai, claude):
        assert isinstance(openai, TracedOpenAI) and isinstance(claude, TracedClaude)
        yield port, openai, claude


def _trace(spans: list[Span], trace_id: str) -> dict[str, Span]:
    """The spans of one trace by name; each name at most once."""
    out: dict[str, Span] = {}
    for span in spans:
        if span.trace_id == trace_id:
            assert span.name not in out or span.name == "POST", span.name
            out.setdefault(span.name, span)
    return out


def _parent(traceparent: str) -> tuple[str, str]:
    version, trace_id, parent, flags = traceparent.split("-")
    assert version == "00" and int(flags, 16) & 1  # sampled (level 2 may add "random")
    return trace_id, parent


def test_json_answer_continues_the_client_trace(run: Runner, collector: Collector,
                                                logs: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        before = len(collector.spans)
        async with traced(collector, service_name="mm-test", headers={"x-team": "blue"}) as (
                port, openai, _):
            payload = {**chat_body("gpt-x", stream=False), "max_tokens": 50, "temperature": 0.25,
                       "top_p": 0.5, "seed": 7, "stop": "END", "presence_penalty": 0.1}
            status, _, _ = await request(port, "POST", "/v1/chat/completions", payload,
                                         {"traceparent": TRACEPARENT, "tracestate": "vendor=1"})
            assert status == 200
            spans = await collector.gather(before + 3)
        found = _trace(spans[before:], CLIENT_TRACE)
        server, chat, http = found["POST /v1/chat/completions"], found["chat gpt-x"], found["POST"]
        assert server.kind == SERVER and chat.kind == CLIENT and http.kind == CLIENT
        assert server.parent_id == CLIENT_PARENT
        assert chat.parent_id == server.span_id and http.parent_id == chat.span_id
        assert server.start_ns <= chat.start_ns <= http.start_ns <= http.end_ns <= chat.end_ns
        assert chat.end_ns <= server.end_ns
        assert server.attributes["http.response.status_code"] == 200
        assert server.attributes["http.route"] == "/v1/chat/completions"
        assert server.attributes["client.address"] == "127.0.0.1"
        assert server.attributes["gen_ai.request.model"] == "gpt-x"
        assert server.resource["service.name"] == "mm-test"
        attrs = chat.attributes
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "openai"
        assert attrs["gen_ai.request.model"] == "gpt-x"
        assert attrs["gen_ai.response.model"] == "gpt-x"
        assert attrs["gen_ai.request.max_tokens"] == 50
        assert attrs["gen_ai.request.temperature"] == 0.25
        assert attrs["gen_ai.request.top_p"] == 0.5 and attrs["gen_ai.request.seed"] == 7
        assert attrs["gen_ai.request.stop_sequences"] == ["END"]
        assert attrs["gen_ai.request.presence_penalty"] == 0.1
        assert "gen_ai.request.frequency_penalty" not in attrs
        assert attrs["gen_ai.usage.input_tokens"] == ANSWER.prompt_tokens
        assert attrs["gen_ai.usage.output_tokens"] == ANSWER.completion_tokens
        assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
        assert attrs["server.address"] == "127.0.0.1" and attrs["server.port"] == openai.port
        assert "error.type" not in attrs and chat.status_code != ERROR
        assert http.attributes["http.response.status_code"] == 200
        assert http.attributes["url.full"] == f"{openai.origin}/v1/chat/completions"
        # the upstream saw the HTTP span as its parent, in the client's trace, with its tracestate
        assert _parent(openai.seen[-1]["traceparent"]) == (CLIENT_TRACE, http.span_id)
        assert openai.seen[-1]["tracestate"] == "vendor=1"
        assert collector.content_types[-1] == "application/x-protobuf"
        assert collector.headers[-1]["x-team"] == "blue"
    run(main())
    assert [r.trace_id for r in logs.records if r.name == "modelmux.access"] == [CLIENT_TRACE]


def test_stream_gets_a_new_trace_with_usage_and_finish_reason(run: Runner, collector: Collector) -> None:
    async def main() -> None:
        before = len(collector.spans)
        async with traced(collector) as (port, _, claude):
            status, _, body = await request(port, "POST", "/v1/chat/completions",
                                            chat_body("claude-x", stream=True))
            assert status == 200 and body.rstrip().endswith(b"data: [DONE]")
            spans = await collector.gather(before + 3)
        trace_id, parent = _parent(claude.seen[-1]["traceparent"])
        found = _trace(spans[before:], trace_id)
        server, chat, http = found["POST /v1/chat/completions"], found["chat claude-x"], found["POST"]
        assert server.parent_id == "" and trace_id != CLIENT_TRACE
        assert chat.parent_id == server.span_id and http.parent_id == chat.span_id
        assert http.span_id == parent
        attrs = chat.attributes
        assert attrs["gen_ai.provider.name"] == "anthropic"
        assert attrs["gen_ai.usage.input_tokens"] == CLAUDE_ANSWER.prompt_tokens
        assert attrs["gen_ai.usage.output_tokens"] == CLAUDE_ANSWER.completion_tokens
        assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
        assert attrs["gen_ai.response.model"] == "claude-x"
        assert server.attributes["modelmux.stream_mode"] == "standard"
    run(main())


def test_retries_are_http_spans_under_one_failed_call(run: Runner, collector: Collector) -> None:
    async def main() -> None:
        before = len(collector.spans)
        async with traced(collector) as (port, openai, _):
            openai.faults.extend(["429", "429", "429"])
            status, _, _ = await request(port, "POST", "/v1/chat/completions",
                                         chat_body("gpt-x", stream=False),
                                         {"traceparent": TRACEPARENT.replace("4bf9", "5bf9")})
            assert status == 429
            spans = await collector.gather(before + 5)
        trace_id = "5bf9" + CLIENT_TRACE[4:]
        mine = [s for s in spans[before:] if s.trace_id == trace_id]
        chat = next(s for s in mine if s.name == "chat gpt-x")
        tries = sorted((s for s in mine if s.name == "POST"), key=lambda s: s.start_ns)
        assert [s.attributes.get("http.request.resend_count") for s in tries] == [None, 1, 2]
        assert all(s.parent_id == chat.span_id and s.status_code == ERROR for s in tries)
        assert all(s.attributes["error.type"] == "429" for s in tries)
        assert chat.attributes["error.type"] == "rate_limit_exceeded" and chat.status_code == ERROR
        server = next(s for s in mine if s.kind == SERVER)
        assert server.attributes["http.response.status_code"] == 429
        assert [_parent(seen["traceparent"])[1] for seen in openai.seen[-3:]] == \
            [s.span_id for s in tries]
    run(main())


def test_sample_ratio_zero_still_propagates_but_exports_nothing(run: Runner,
                                                               collector: Collector) -> None:
    async def main() -> None:
        before = len(collector.spans)
        async with traced(collector, sample_ratio=0.0) as (port, openai, _):
            status, _, _ = await request(port, "POST", "/v1/chat/completions",
                                         chat_body("gpt-x", stream=False))
            assert status == 200
        # the app is closed, and closing flushed the exporter: nothing was sampled, nothing came
        assert len(collector.spans) == before
        flags = openai.seen[-1]["traceparent"].rsplit("-", 1)[1]
        assert int(flags, 16) & 1 == 0  # not sampled, and still propagated
    run(main())


def test_a_reset_mid_body_fails_that_try(run: Runner, collector: Collector) -> None:
    async def main() -> None:
        before = len(collector.spans)
        async with traced(collector) as (port, openai, _):
            openai.faults.append("reset_early")
            status, _, body = await request(port, "POST", "/v1/chat/completions",
                                            chat_body("gpt-x", stream=True))
            assert status == 200 and body.rstrip().endswith(b"data: [DONE]")
            spans = await collector.gather(before + 4)
        trace_id = _parent(openai.seen[-1]["traceparent"])[0]
        tries = sorted((s for s in spans[before:] if s.trace_id == trace_id and s.name == "POST"),
                       key=lambda s: s.start_ns)
        assert [s.status_code == ERROR for s in tries] == [True, False]
        assert tries[0].attributes["error.type"].startswith("upstream_")
        assert tries[1].attributes["http.request.resend_count"] == 1
        chat = next(s for s in spans[before:] if s.name == "chat gpt-x" and
                    s.trace_id == trace_id)
        assert "error.type" not in chat.attributes  # the retry answered
    run(main())


def test_a_stream_cut_mid_way_is_a_failed_call(run: Runner, collector: Collector) -> None:
    async def main() -> None:
        before = len(collector.spans)
        async with traced(collector) as (port, openai, _):
            openai.faults.append("reset")  # after the first chunks reached the client
            status, _, body = await request(port, "POST", "/v1/chat/completions",
                                            chat_body("gpt-x", stream=True))
            assert status == 200 and b'"error"' in body
            spans = await collector.gather(before + 3)
        trace_id = _parent(openai.seen[-1]["traceparent"])[0]
        found = _trace(spans[before:], trace_id)
        chat, attempt = found["chat gpt-x"], found["POST"]
        assert chat.status_code == ERROR and attempt.status_code == ERROR
        assert chat.attributes["error.type"] == attempt.attributes["error.type"]
        assert chat.attributes["error.type"].startswith("upstream_")
    run(main())


def test_an_error_event_after_chunks_in_the_same_read_fails_the_call(
        run: Runner, collector: Collector) -> None:
    """The upstream writes good chunks and then an error event at once; they reach the
    watcher as one piece, and the error at its end still fails the call."""
    async def main() -> None:
        before = len(collector.spans)
        async with traced(collector) as (port, openai, _):
            openai.faults.append("error_event")
            status, _, body = await request(port, "POST", "/v1/chat/completions",
                                            chat_body("gpt-x", stream=True))
            assert status == 200 and body.count(b"data: ") == 5 and b'"error"' in body
            spans = await collector.gather(before + 3)
        trace_id = _parent(openai.seen[-1]["traceparent"])[0]
        chat = _trace(spans[before:], trace_id)["chat gpt-x"]
        assert chat.status_code == ERROR and chat.attributes["error.type"] == "bad_gateway"
    run(main())


def test_stream_error_finds_the_error_event_that_ends_a_piece() -> None:
    from modelmux.observability.calls import stream_error

    error = b'data: {"error":{"message":"m","type":"t","code":"boom"}}\n\n'
    chunk = b'data: {"choices":[]}\n\n'
    assert stream_error(error) == "boom"
    assert stream_error(chunk * 3 + error) == "boom"
    assert stream_error(chunk * 3) is None
    assert stream_error(b'xdata: {"error":{"code":"no"}}\n\n') is None
    assert stream_error(b'data: {"error":{}}\n\n') == "error"


def _count_watcher_work(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the watcher and the chat route work out per call, by name, as they do it."""
    from modelmux.api import chat
    from modelmux.observability import calls, otel

    work: list[str] = []

    def counted(name: str, real: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            work.append(name)
            return real(*args)
        return wrapper

    class CountedReader(calls.StreamReader):
        __slots__ = ()

        def feed(self, piece: bytes) -> None:
            work.append("chunk")
            super().feed(piece)

    monkeypatch.setattr(calls, "request_attributes", counted("request", calls.request_attributes))
    monkeypatch.setattr(calls, "read_answer", counted("answer", calls.read_answer))
    monkeypatch.setattr(chat, "note_answer_usage", counted("chat usage", chat.note_answer_usage))
    monkeypatch.setattr(calls, "StreamReader", CountedReader)
    monkeypatch.setattr(otel, "status_of", counted("server span", otel.status_of))
    return work


def test_an_unsampled_call_is_not_worked_on_but_still_propagated(
        run: Runner, collector: Collector, monkeypatch: pytest.MonkeyPatch) -> None:
    work = _count_watcher_work(monkeypatch)

    async def main() -> None:
        async with traced(collector, sample_ratio=0.0) as (port, openai, _):
            for stream in (False, True):
                status, _, _ = await request(port, "POST", "/v1/chat/completions",
                                             chat_body("gpt-x", stream=stream))
                assert status == 200
        assert len(openai.seen) == 2
        for seen in openai.seen:
            assert int(seen["traceparent"].rsplit("-", 1)[1], 16) & 1 == 0

    run(main())
    # nothing for the span; the JSON answer's usage comes from the provider, which decodes the
    # answer anyway, so the chat route does not decode it again
    assert work == []


def test_a_traced_json_answer_is_decoded_once(run: Runner, collector: Collector,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    work = _count_watcher_work(monkeypatch)

    async def main() -> None:
        async with traced(collector) as (port, _, _):
            status, _, _ = await request(port, "POST", "/v1/chat/completions",
                                         chat_body("gpt-x", stream=False))
            assert status == 200
            samples = await scrape(port)
        assert value(samples, "modelmux_tokens_total", type="input") == ANSWER.prompt_tokens

    run(main())
    # the chat route reuses the usage the watcher read
    assert [name for name in work if name != "server span"] == ["request", "answer"]


@pytest.mark.parametrize(("ratio", "spliced"), [(0.0, True), (1.0, False)],
                         ids=["unsampled", "sampled"])
def test_an_unsampled_stream_is_spliced_and_a_sampled_one_read_piece_by_piece(
        run: Runner, collector: Collector, monkeypatch: pytest.MonkeyPatch, ratio: float,
        spliced: bool) -> None:
    """The call stage lets the exchange splice a watched stream only when the watcher has
    nothing to do with the pieces: a recorded span reads every one (usage, finish reason,
    error events)."""
    from modelmux.pipeline.stream import RelayedStream

    splices: list[int] = []
    real = RelayedStream.splice

    async def counted(*args: Any) -> None:
        splices.append(1)
        await real(*args)

    monkeypatch.setattr(RelayedStream, "splice", counted)

    async def main() -> None:
        async with traced(collector, sample_ratio=ratio) as (port, openai, _):
            openai.split = random_pieces(3)  # the stream arrives over many reads
            status, _, body = await request(port, "POST", "/v1/chat/completions",
                                            chat_body("gpt-x", stream=True))
            assert status == 200 and body.endswith(b"data: [DONE]\n\n")

    run(main())
    assert bool(splices) is spliced


def test_embeddings_and_legacy_completions_are_traced(run: Runner, collector: Collector) -> None:
    async def main() -> None:
        before = len(collector.spans)
        async with traced(collector) as (port, openai, _):
            status, _, _ = await request(port, "POST", "/v1/embeddings",
                                         {"model": "gpt-x", "input": ["a b", "c"]},
                                         {"traceparent": TRACEPARENT})
            assert status == 200
            status, _, body = await request(
                port, "POST", "/v1/completions",
                {"model": "gpt-x", "prompt": "x", "stream": True,
                 "stream_options": {"include_usage": True}})
            assert status == 200 and body.rstrip().endswith(b"data: [DONE]")
            spans = await collector.gather(before + 6)
        embed = _trace(spans[before:], CLIENT_TRACE)["embeddings gpt-x"]
        assert embed.attributes["gen_ai.operation.name"] == "embeddings"
        assert embed.attributes["gen_ai.usage.input_tokens"] == 3
        assert embed.attributes["gen_ai.usage.output_tokens"] == 0
        trace_id, _ = _parent(openai.seen[-1]["traceparent"])
        text = _trace(spans[before:], trace_id)["text_completion gpt-x"]
        assert text.attributes["gen_ai.operation.name"] == "text_completion"
        assert text.attributes["gen_ai.response.finish_reasons"] == ["stop"]
        assert text.attributes["gen_ai.usage.output_tokens"] == ANSWER.completion_tokens
    run(main())
