"""``modelmux.bench.client.LoadRun`` against tiny in-process servers: counts, errors, phases."""

from __future__ import annotations

import asyncio
import socket
from time import perf_counter_ns
from collections.abc import Awaitable, Callable

from modelmux.bench.client import LoadRun, Plan, Tally
from modelmux.bench.wire import chat_body, encode_request, parse_url
from tests.conftest import Runner

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
ERROR = b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\n\r\n{}"
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
EVENT = b"data: {}\n\n"

Reply = Callable[[asyncio.StreamWriter], Awaitable[bool]]  # False: close the connection


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, reply: Reply,
                 seen: list[int]) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            seen.append(1)
            if not await reply(writer):
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def load(reply: Reply, plan: Plan) -> tuple[Tally, int]:
    """Run ``plan`` against a loopback server answering with ``reply``; (tally, requests seen)."""
    seen: list[int] = []
    server = await asyncio.start_server(lambda r, w: _serve(r, w, reply, seen), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = parse_url(f"http://127.0.0.1:{port}")
    request = encode_request(target, chat_body("mock", 10, plan.stream), stream=plan.stream)
    async with server:
        tally = await asyncio.wait_for(LoadRun(target, request, plan).run(), 10)
    return tally, len(seen)


def answer(data: bytes, keep: bool = True) -> Reply:
    async def reply(writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        return keep
    return reply


def test_counts_every_response(run: Runner) -> None:
    tally, seen = run(load(answer(OK), Plan(concurrency=3, requests=20)))
    assert (tally.responses, tally.ok, tally.errors, seen) == (20, 20, {}, 20)
    assert tally.latency.count == tally.ttfb.count == 20 and tally.elapsed_ns > 0


def test_status_errors_are_counted_by_code(run: Runner) -> None:
    tally, _ = run(load(answer(ERROR), Plan(concurrency=2, requests=6)))
    assert (tally.responses, tally.ok, tally.errors) == (6, 0, {"status_500": 6})


def test_streams_count_events_and_truncation(run: Runner) -> None:
    whole = SSE_HEAD + b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in
                                [EVENT, EVENT, b"data: [DONE]\n\n"]) + b"0\r\n\r\n"
    tally, _ = run(load(answer(whole), Plan(concurrency=2, requests=5, stream=True)))
    assert (tally.ok, tally.streams, tally.events, tally.errors) == (5, 5, 15, {})
    assert tally.gap.count == 5 * 2  # the first event of each stream is its TTFB, not a gap
    cut = SSE_HEAD + b"%x\r\n%s\r\n" % (len(EVENT), EVENT)
    tally, _ = run(load(answer(cut, keep=False), Plan(concurrency=2, requests=4, stream=True)))
    assert (tally.ok, tally.errors) == (0, {"truncated": 4})


def test_timeouts(run: Runner) -> None:
    async def never(writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    tally, _ = run(load(never, Plan(concurrency=2, requests=2, timeout=0.2)))
    assert (tally.ok, tally.errors) == (0, {"timeout": 2})


def test_connect_errors(run: Runner) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = parse_url(f"http://127.0.0.1:{port}")

    async def main() -> Tally:
        return await LoadRun(target, b"", Plan(concurrency=2, requests=3, timeout=1)).run()

    tally = run(main())
    assert (tally.ok, tally.errors) == (0, {"connect": 3})


def test_warmup_requests_are_not_recorded(run: Runner) -> None:
    tally, seen = run(load(answer(OK), Plan(concurrency=1, requests=10, warmup_requests=5)))
    assert (tally.ok, seen) == (10, 15)


def test_duration_budget(run: Runner) -> None:
    """The measured phase lasts the duration, after the warmup and inside the run; how much
    longer depends on the machine, so only the recorded times bound it."""
    began = perf_counter_ns()
    tally, _ = run(load(answer(OK), Plan(concurrency=2, duration=0.3, warmup_seconds=0.05)))
    wall = perf_counter_ns() - began
    assert tally.ok > 0 and tally.errors == {}
    slack = 2_000_000  # uvloop rounds its timers to milliseconds
    assert 0.3e9 - slack <= tally.elapsed_ns <= wall - 0.05e9 + slack
