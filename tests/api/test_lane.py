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
    length = re.search(rb"\r\ncontent-length: (\d+)", head, re.IGNORECASE)
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
async def gateway(cfg: Config, lane: bool, **limits: object
                  ) -> AsyncIterator[tuple[App, int, Lines, list[bool]]]:
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
        async with running(app, **limits) as (_, port):
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


async def one_failing(cfg: Config, fake: FakeOpenAI, lane: bool, fault: str
                      ) -> tuple[bytes, bytes, list[dict[str, Any]], list[bool], int]:
    """A request the upstream fails with ``fault`` between two it answers; the answers, the
    access lines, what the lane took and how many requests reached the upstream."""
    async with gateway(cfg, lane) as (app, port, lines, taken):
        reader, writer = await connect(port)
        writer.write(request(chat(), "warm-up"))
        await response(reader)
        fake.faults.append(fault)
        writer.write(request(chat(), "failing"))
        failing = await response(reader)
        writer.write(request(chat(), "after"))
        after = await response(reader)
        writer.close()
        await lines.wait_for(3)
        assert all(live.in_flight == 0 for live in app.router.live.values())
        origin = fake.origin.encode()  # each run has its own upstream
        return (failing.replace(origin, b"upstream"), after, lines.fields[:3], taken,
                len(fake.raw_bodies))


@pytest.mark.parametrize(("fault", "status", "retries"), [
    ("503", 502, 0), ("429", 429, 0), ("400", 400, 2), ("error_200", 400, 0),
    ("stall", 504, 0), ("503", 200, 1),
])
def test_what_the_lane_cannot_answer_the_handler_does(run, fault: str, status: int,
                                                      retries: int) -> None:
    """An upstream error status, a 200 with an error body or a first-byte timeout met by the
    lane's try: the handler takes that outcome as its own first try's (retries, status
    mapping, fallback), so the client, the access line and the upstream see what they see
    without the lane."""
    async def main() -> None:
        results = []
        for lane in (False, True):
            async with FakeOpenAI() as fake:
                cfg = config(fake.origin, max_retries=retries,
                             timeouts=TimeoutsConfig(first_byte=0.3))
                results.append(await one_failing(cfg, fake, lane, fault))
        (failing, after, fields, _, sent), (lane_failing, lane_after, lane_fields, taken,
                                            lane_sent) = results
        assert failing.startswith(b"HTTP/1.1 %d" % status)
        assert lane_failing == failing and lane_after == after
        assert lane_fields == fields and lane_sent == sent
        assert taken[:2] == [False, True]

    run(main())


def test_a_client_that_leaves_ends_the_upstream_try(run) -> None:
    async def main() -> None:
        results = []
        for lane in (False, True):
            async with FakeOpenAI() as fake, gateway(config(fake.origin), lane) as (
                    app, port, lines, taken):
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


def test_a_body_after_its_head_still_takes_the_lane(run) -> None:
    """The head and the body in separate reads (as httpx writes them): the lane waits for
    the body; a body that stops coming goes to the handler, which times it out as always;
    a client that waits for ``100 Continue`` goes to the handler."""
    async def main() -> None:
        async with FakeOpenAI() as fake, gateway(config(fake.origin), True,
                                                 body_timeout=0.3) as (_, port, lines, taken):
            reader, writer = await connect(port)
            writer.write(request(chat(), "warm-up"))
            await response(reader)
            raw = request(chat(), "split")
            head, body = raw.split(b"\r\n\r\n", 1)
            writer.write(head + b"\r\n\r\n")
            await writer.drain()
            for _ in range(3):  # the head is read on its own before the body is sent
                await asyncio.sleep(0.02)
            writer.write(body)
            split = await response(reader)
            assert split.startswith(b"HTTP/1.1 200") and taken == [False, True]
            writer.write(request(chat(), "cut")[:-5])
            assert (await response(reader)).startswith(b"HTTP/1.1 408")
            writer.close()
            reader, writer = await connect(port)
            waits = request(chat(), "waits").replace(b"Host: t", b"Host: t\r\nExpect: 100-continue")
            head, body = waits.split(b"\r\n\r\n", 1)
            writer.write(head + b"\r\n\r\n")
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
                    ).startswith(b"HTTP/1.1 100")
            writer.write(body)
            assert (await response(reader)).startswith(b"HTTP/1.1 200")
            writer.close()
            await lines.wait_for(4)
            assert [f["status"] for f in lines.fields] == [200, 200, 408, 200]
            assert taken == [False, True]

    run(main())


def test_a_client_slow_to_read_holds_the_next_request_back(run) -> None:
    """An answer larger than the write buffer: the exchange ends once the client has taken
    it, as ``respond`` waits for the drain; a pipelined request behind it is answered next."""
    async def main() -> None:
        from tests.fakes.answers import Answer

        big = Answer(text="x" * (4 * 1024 * 1024))
        async with FakeOpenAI(answer=big) as fake, gateway(config(fake.origin), True) as (
                _, port, lines, taken):
            reader, writer = await connect(port)
            writer.write(request(chat(), "warm-up"))
            await response(reader)
            writer.write(request(chat(), "big") + request(chat(), "behind"))
            first = await response(reader)
            second = await response(reader)
            writer.close()
            await lines.wait_for(3)
            assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200")
            assert b"x-request-id: behind" in second and taken == [False, True, True]
            assert [f["request_id"] for f in lines.fields] == ["warm-up", "big", "behind"]

    run(main())
