"""The chat lane (``api.lane``) against the coroutine path: the same requests through a server
with the lane and one without must give the same bytes, access lines and metric counts.

Only what differs by nature is set aside: the ``date`` and overhead header values, the
timings of the access line, the client's port and the request id the server makes up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from modelmux.api.app import App
from modelmux.config.providers import OpenAICompatibleConfig, TimeoutsConfig
from modelmux.config.schema import Config, StreamingConfig
from tests.fakes.openai import FakeOpenAI
from tests.server.helpers import DEADLINE, connect, running

TIMING = ("latency_ms", "ttft_ms", "overhead_ms")
_DATE = re.compile(rb"\r\ndate: [^\r]*")
_OVERHEAD = re.compile(rb"\r\nx-modelmux-overhead-ms: [0-9.]+")
_MADE_UP = re.compile(rb"\r\nx-request-id: [0-9a-f]{32}\r\n")


def config(origin: str, **provider: Any) -> Config:
    up = OpenAICompatibleConfig(name="up", models=["gpt-x"], base_url=f"{origin}/v1", **provider)
    return Config(provider=[up])


def request(payload: dict[str, Any] | bytes, request_id: str | None = None) -> bytes:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    head = ["POST /v1/chat/completions HTTP/1.1", "Host: t", "Content-Type: application/json",
            f"Content-Length: {len(body)}"]
    if request_id is not None:
        head.append(f"x-request-id: {request_id}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], **extra}


async def response(reader: asyncio.StreamReader) -> bytes:
    """One response's raw bytes (Content-Length or chunked), the date, the overhead and a
    made-up request id set aside."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    length = re.search(rb"\r\ncontent-length: (\d+)", head, re.I)
    if length is not None:
        body = await asyncio.wait_for(reader.readexactly(int(length.group(1))), DEADLINE)
    else:
        body = await asyncio.wait_for(reader.readuntil(b"\r\n0\r\n\r\n"), DEADLINE)
    head = _MADE_UP.sub(b"\r\nx-request-id: made-up\r\n", _DATE.sub(b"\r\ndate: -", head))
    return _OVERHEAD.sub(b"\r\nx-modelmux-overhead-ms: -", head) + body


class Lines(logging.Handler):
    """The access lines' fields, timings and the client's port set aside."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.fields: list[dict[str, Any]] = []
        self.added = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        fields = {k: getattr(record, k) for k in ("request_id", "client", "key", "method",
                                                  "path", "status", "model", "provider",
                                                  "stream_mode", "attempts", "tokens_in",
                                                  "tokens_out", "cost_usd", "bytes_received",
                                                  "bytes_sent", "completed", "trace_id")}
        fields["client"] = fields["client"].rsplit(":", 1)[0]
        if len(fields["request_id"] or "") == 32:  # made up by the server
            fields["request_id"] = "made-up"
        self.fields.append(fields)
        self.added.set()

    async def wait_for(self, count: int) -> None:
        for _ in range(50):
            if len(self.fields) >= count:
                return
            self.added.clear()
            await asyncio.wait_for(self.added.wait(), DEADLINE)
        raise AssertionError(f"{len(self.fields)} access lines, expected {count}")


@asynccontextmanager
async def gateway(cfg: Config, lane: bool) -> AsyncIterator[tuple[App, int, Lines, list[bool]]]:
    """The app on a loopback port with its access lines captured; ``taken`` says, per offer,
    whether the lane took the request."""
    app = App(cfg)
    assert app.lane is not None
    taken: list[bool] = []
    if lane:
        offer = app.lane.take

        def take(exchange: Any, host: Any) -> Any:
            ticket = offer(exchange, host)
            taken.append(ticket is not None)
            return ticket

        app.lane.take = take  # type: ignore[method-assign]
    else:
        app.lane = None
    logger = logging.getLogger("modelmux.access")
    lines = Lines()
    logger.addHandler(lines)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        async with running(app) as (_, port):
            yield app, port, lines, taken
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
        await app.aclose()


def counts(metrics: str) -> list[str]:
    """The metric samples that count (no timing histograms' buckets or sums, no gauges of
    time)."""
    return [line for line in metrics.splitlines()
            if line and not line.startswith("#") and "_bucket" not in line
            and "_sum" not in line and "seconds" not in line.split("{")[0].split(" ")[0]
            or line.startswith("modelmux_request_duration_seconds_count")]


async def metrics_text(port: int) -> str:
    reader, writer = await connect(port)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        raw = await response(reader)
    finally:
        writer.close()
    return raw.split(b"\r\n\r\n", 1)[1].decode()


SEQUENCE: list[bytes] = [
    request(chat(), "warm-up"),  # no idle upstream connection yet: the coroutine path
    request(chat(), "plain"),
    request(chat(max_tokens=40, temperature=0.5, stream=False), "options"),
    request(chat()),  # the server makes the id up
    request(chat(stream=True), "a-stream"),  # a stream: never the lane
    request(chat(), "after-the-stream"),
    request({"model": "gpt-x"}, "no-messages"),  # a 400 from the handler
    request(chat(model="nobody"), "unknown-model"),  # a 404 from the handler
    request(b"{not json", "bad-json"),
    request(chat(), "last"),
]


async def run_sequence(cfg: Config, lane: bool) -> tuple[list[bytes], list[dict[str, Any]],
                                                         list[str], list[bool]]:
    async with gateway(cfg, lane) as (_, port, lines, taken):
        reader, writer = await connect(port)
        try:
            answers = []
            for raw in SEQUENCE:
                writer.write(raw)
                answers.append(await response(reader))
        finally:
            writer.close()
        await lines.wait_for(len(SEQUENCE))
        fields = lines.fields[:]
        return answers, fields, counts(await metrics_text(port)), taken


def test_the_lane_answers_as_the_coroutine_path_does(run) -> None:
    async def main() -> None:
        async with FakeOpenAI() as fake:
            cfg = config(fake.origin)
            off = await run_sequence(cfg, lane=False)
            on = await run_sequence(cfg, lane=True)
        answers, lines, metrics, taken = on
        assert taken == [False, True, True, True, False, True, False, False, False, True]
        for got, expected in zip(answers, off[0], strict=True):
            assert got == expected
        assert b"x-request-id: plain\r\n" in answers[1] and b"x-modelmux-attempts: 1" in answers[1]
        assert lines == off[1]
        assert [line["status"] for line in lines] == [200] * 6 + [400, 404, 400, 200]
        assert metrics == off[2]
        assert any(line.startswith("modelmux_requests_total") for line in metrics)

    run(main())


def test_upstream_errors_go_to_the_coroutine_path(run) -> None:
    """A non-2xx answer to the lane's try is not the client's: the handler tries afresh, so
    the client gets what it gets without the lane (the upstream sees the request twice)."""
    async def main() -> None:
        results = []
        for lane in (False, True):
            async with FakeOpenAI() as fake:
                async with gateway(config(fake.origin, max_retries=0), lane) as (
                        _, port, lines, taken):
                    reader, writer = await connect(port)
                    writer.write(request(chat(), "warm-up"))
                    await response(reader)
                    fake.faults.extend(["503", "503"] if lane else ["503"])
                    writer.write(request(chat(), "failing"))
                    failing = await response(reader)
                    writer.write(request(chat(), "after"))
                    after = await response(reader)
                    writer.close()
                    await lines.wait_for(3)
                    results.append((failing, after, lines.fields, len(fake.raw_bodies), taken))
        (failing, after, fields, sent, _), (lane_failing, lane_after, lane_fields, lane_sent,
                                            taken) = results
        assert failing.startswith(b"HTTP/1.1 502") and lane_failing == failing
        assert lane_after == after and lane_fields == fields
        assert taken == [False, True, True] and lane_sent == sent + 1

    run(main())


def test_first_byte_timeout_goes_to_the_coroutine_path(run) -> None:
    async def main() -> None:
        async with FakeOpenAI() as fake:
            cfg = config(fake.origin, max_retries=0,
                         timeouts=TimeoutsConfig(first_byte=0.2))
            async with gateway(cfg, lane=True) as (app, port, lines, taken):
                reader, writer = await connect(port)
                writer.write(request(chat(), "warm-up"))
                await response(reader)
                fake.faults.extend(["stall", "stall"])
                writer.write(request(chat(), "stalled"))
                stalled = await response(reader)
                writer.close()
                await lines.wait_for(2)
                assert stalled.startswith(b"HTTP/1.1 504")
                assert taken == [False, True]
                assert [f["status"] for f in lines.fields] == [200, 504]
                assert all(live.in_flight == 0 for live in app.router.live.values())

    run(main())


def test_a_client_that_leaves_ends_the_upstream_try(run) -> None:
    async def main() -> None:
        results = []
        for lane in (False, True):
            async with FakeOpenAI() as fake:
                async with gateway(config(fake.origin), lane) as (app, port, lines, taken):
                    reader, writer = await connect(port)
                    writer.write(request(chat(), "warm-up"))
                    await response(reader)
                    fake.faults.append("stall")
                    writer.write(request(chat(), "left"))
                    for _ in range(200):  # the request reached the upstream
                        if len(fake.raw_bodies) == 2:
                            break
                        await asyncio.sleep(0.01)
                    writer.close()
                    await lines.wait_for(2)
                    for _ in range(200):  # the upstream connection was closed
                        if fake.peer_left:
                            break
                        await asyncio.sleep(0.01)
                    assert fake.peer_left == 1
                    assert all(live.in_flight == 0 for live in app.router.live.values())
                    results.append((lines.fields, taken))
        assert results[1][0] == results[0][0]
        assert results[1][1] == [False, True]
        assert results[0][0][1]["status"] == 499

    run(main())


def test_the_switch_and_what_keeps_the_lane_off(run, monkeypatch: pytest.MonkeyPatch) -> None:
    async def lane_of(cfg: Config) -> object:
        app = App(cfg)
        try:
            return app.lane
        finally:
            await app.aclose()

    cfg = config("http://127.0.0.1:9")
    assert run(lane_of(cfg)) is not None
    monkeypatch.setenv("MODELMUX_LANE", "0")
    assert run(lane_of(cfg)) is None
    monkeypatch.delenv("MODELMUX_LANE")
    always = Config(provider=cfg.provider, streaming=StreamingConfig(mode="always"))
    assert run(lane_of(always)) is None
