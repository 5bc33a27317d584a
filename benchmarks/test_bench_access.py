"""pytest-benchmark: the access log's cost per request, before and after the buffered line log.

Run: ``python -m pytest benchmarks/test_bench_access.py``. One round logs ``REQUESTS`` finished
requests inside a running event loop (as the server does) and then writes whatever is still
buffered, to a regular file; divide the time by ``REQUESTS`` for the cost per request.
``before`` is the code path of the commit before the change (frozen below: a ``logging`` record
with ``extra=`` fields, the ``logs.setup`` formatter, a line-buffered stream like ``sys.stderr``);
``after`` is ``AccessLog`` under ``logs.setup`` today.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modelmux.observability import logs
from modelmux.observability.access import CLIENT_CLOSED, MAX_TEXT, AccessLog
from modelmux.observability.logs import ONE_LINE, JsonFormatter, TextFormatter, json_line
from modelmux.observability.record import STREAMED, RequestRecord
from modelmux.providers.base import CallStats
from tests.logging_state import restored_logging

pytest.importorskip("pytest_benchmark")

REQUESTS = 1000


class Finished:
    """What ``AccessLog.log`` reads of a finished non-streamed exchange."""

    method = "POST"
    path = "/v1/chat/completions"
    client = "127.0.0.1:51234"
    status = 200
    started = ended = True
    started_ns = 1_000_000_000
    head_ns = 1_000_431_000
    bytes_received = 211
    bytes_sent = 1831


def finished_record() -> RequestRecord:
    record = RequestRecord("6f1c0d2e9a8b4c7d8e9f0a1b2c3d4e5f", "/v1/chat/completions")
    record.model, record.provider, record.mode = "gpt-4o", "openai", "never"
    record.stats = CallStats()
    record.stats.attempts, record.stats.tokens = 1, (812, 164)
    record.overhead_ns = 431_000
    return record


def _before_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if value and value.isprintable() and not any(c in value for c in ' "=\\'):
        return value
    return json_line(json.dumps(value, ensure_ascii=False))


def _before_ms(ns: int) -> float:
    return round(ns / 1e6, 3)


def before_log(logger: logging.Logger, record: RequestRecord, exchange: Any, now_ns: int) -> None:
    """``AccessLog.log`` as it was: fields dict, logfmt, ``logger.info(..., extra=fields)``."""
    if not logger.isEnabledFor(logging.INFO):
        return
    stats = record.stats
    tokens = stats.tokens if stats is not None else None
    status = exchange.status if exchange.started else CLIENT_CLOSED
    ttft = None
    if record.mode in STREAMED and status < 400 and exchange.head_ns:
        ttft = _before_ms(exchange.head_ns - exchange.started_ns)
    fields = {
        "request_id": record.request_id, "client": exchange.client, "method": exchange.method,
        "path": exchange.path, "status": status,
        "model": record.model[:MAX_TEXT] if record.model is not None else None,
        "provider": record.provider, "stream_mode": record.mode,
        "attempts": stats.attempts if stats is not None else None,
        "tokens_in": tokens[0] if tokens is not None else None,
        "tokens_out": tokens[1] if tokens is not None else None,
        "latency_ms": _before_ms(now_ns - exchange.started_ns), "ttft_ms": ttft,
        "overhead_ms": _before_ms(record.overhead_ns) if record.overhead_ns is not None else None,
        "bytes_received": exchange.bytes_received, "bytes_sent": exchange.bytes_sent,
        "completed": exchange.ended, "trace_id": record.span.trace_id if record.span else None,
    }
    line = " ".join(f"{key}={_before_value(value)}" for key, value in fields.items())
    logger.info(ONE_LINE, line, extra=fields)


@pytest.fixture
def modelmux_logger() -> Iterator[logging.Logger]:
    with restored_logging() as root:
        yield root


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def requests_in_a_loop(loop: asyncio.AbstractEventLoop, log_one: Callable[[], None],
                       flush: Callable[[], None]) -> Callable[[], None]:
    """One round: ``REQUESTS`` lines logged inside a running loop, then the rest written."""

    async def burst() -> None:
        for _ in range(REQUESTS):
            log_one()
        flush()

    def round_() -> None:
        loop.run_until_complete(burst())

    return round_


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("path", ["before", "after"])
def test_access_line_per_request(benchmark, modelmux_logger: logging.Logger, loop: asyncio.AbstractEventLoop,
                                 tmp_path: Path, fmt: str, path: str) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "access.log"
    record, exchange = finished_record(), Finished()
    with open(out, "w", encoding="utf-8", buffering=1) as stream:  # line-buffered, as stderr
        if path == "before":
            handler = logging.StreamHandler(stream)
            handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
            modelmux_logger.handlers[:] = [handler]
            modelmux_logger.setLevel(logging.INFO)
            modelmux_logger.propagate = False
            access = logging.getLogger("modelmux.access")
            round_ = requests_in_a_loop(loop, lambda: before_log(access, record, exchange, 2_315_402_000),
                                        stream.flush)
        else:
            saved, sys.stderr = sys.stderr, stream
            try:
                logs.setup("info", fmt)
            finally:
                sys.stderr = saved
            lines = logs.line_log(logging.getLogger("modelmux.access"))
            assert lines is not None
            log = AccessLog()
            round_ = requests_in_a_loop(loop, lambda: log.log(record, exchange, 2_315_402_000),
                                        lines.flush)
        rounds = [0]

        def counted() -> None:
            rounds[0] += 1
            round_()

        benchmark.pedantic(counted, rounds=30, warmup_rounds=2)
        benchmark.extra_info["requests_per_round"] = REQUESTS
    written = out.read_text(encoding="utf-8").splitlines()
    assert rounds[0] and len(written) == rounds[0] * REQUESTS  # one round under --benchmark-disable
    last = json.loads(written[-1])["message"] if fmt == "json" else written[-1]
    assert "status=200 model=gpt-4o provider=openai stream_mode=never attempts=1" in last
