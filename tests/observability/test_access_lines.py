"""The buffered access log: the line ``logs.setup``'s formatter would write, written in batches
(on size, on a timer while idle, before an ordinary line, on close), bounded when the destination
stalls, and silent when the log is off."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelmux.observability import logs
from modelmux.observability.access import (
    MAX_TEXT,
    AccessLine,
    AccessLog,
    ns_to_ms,
    ns_to_ms_text,
    access_fields,
    logfmt,
)
from modelmux.observability.linelog import FLUSH_BYTES, LineLog, Stamp, LogTarget
from modelmux.observability.logs import ONE_LINE, JsonFormatter, TextFormatter
from modelmux.observability.record import RequestRecord
from modelmux.providers.base import CallStats
from tests.observability.test_log_injection import EVIL, checked_lines, log_file

TIME = re.compile(r'^\{"time": "[^"]*"|^[^A-Z]*')


def exchange(**changes: object) -> SimpleNamespace:
    """What the access log reads of a finished exchange."""
    values = dict(method="POST", path="/v1/chat/completions", client="127.0.0.1:5123",
                  status=200, started=True, ended=True, started_ns=1_000_000_000,
                  head_ns=1_000_431_500, bytes_received=211, bytes_sent=1831)
    values.update(changes)
    return SimpleNamespace(**values)


def record(model: str | None = "gpt-4o", mode: str | None = "standard", *, stats: bool = True,
           trace: str | None = None, request_id: str = "6f1c0d2e") -> RequestRecord:
    done = RequestRecord(request_id, "/v1/chat/completions")
    done.model, done.provider, done.mode = model, "openai" if model else None, mode
    if stats:
        done.stats = CallStats()
        done.stats.attempts, done.stats.tokens = 2, (812, 164)
        done.overhead_ns = 431_000
    if trace is not None:
        done.span = SimpleNamespace(trace_id=trace)  # type: ignore[assignment]
    return done


CASES = {
    "plain": (record(), exchange()),
    "hostile-model": (record(EVIL), exchange(status=404, started=True)),
    "nothing-known": (record(None, None, stats=False), exchange(path="/health", status=503)),
    "client-left": (record(), exchange(started=False, ended=False, head_ns=0)),
    "empty-model": (record(""), exchange(status=400)),
    "odd-path": (record(), exchange(path='/v1/a b"c=d\\e\u200b', method="PO\x7fST")),
    "unicode": (record("modèle-中文", trace="0af7651916cd43dd8448eb211c80319c"), exchange()),
    "quote-in-id": (record(request_id='id"=1\\'), exchange()),
}


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("case", CASES)
def test_the_line_is_the_formatters_line(case: str, fmt: str) -> None:
    done, finished = CASES[case]
    now_ns = 3_315_402_123
    fields = access_fields(done, finished, now_ns)  # type: ignore[arg-type]
    logger = logging.getLogger("modelmux.access")
    log_record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, ONE_LINE,
                                   (logfmt(fields),), None, extra=fields)
    formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    line = AccessLine(logger.name, os.getpid())
    fast = (line.json if fmt == "json" else line.text)(done, finished, now_ns)  # type: ignore[arg-type]
    assert fast.endswith("\n") and fast.count("\n") == 1
    assert TIME.sub("", fast[:-1]) == TIME.sub("", formatter.format(log_record))
    stamp = TIME.match(fast)
    assert stamp and re.fullmatch(r'(\{"time": ")?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}[" ]',
                                  stamp.group())


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_under_setup_lines_wait_then_come_out_whole_and_in_order(run, tmp_path: Path,
                                                                  fmt: str) -> None:
    done, finished = CASES["hostile-model"]

    async def main() -> list[str]:
        lines = logs.line_log(logging.getLogger("modelmux.access"))
        assert lines is not None
        AccessLog().log(done, finished, 2_000_000_000)  # type: ignore[arg-type]
        AccessLog().log(*CASES["plain"], 2_000_000_000)  # type: ignore[arg-type]
        waiting = path.read_text()
        logging.getLogger("modelmux.server").warning("an ordinary line")
        return [waiting, path.read_text()]

    with log_file(tmp_path, fmt) as path:
        before, after = run(main())
    assert before == ""  # buffered: no write per request
    lines = checked_lines(path, fmt)
    assert len(lines) == 3 and after == path.read_text()
    if fmt == "json":
        entries = [json.loads(line) for line in lines]
        assert [e["logger"] for e in entries] == ["modelmux.access"] * 2 + ["modelmux.server"]
        assert entries[0]["model"] == EVIL[:MAX_TEXT] and entries[1]["status"] == 200
    else:
        assert "model=\"evil\\n" in lines[0] and "an ordinary line" in lines[2]


@pytest.mark.parametrize("level, enabled", [("warn", True), ("info", False)])
def test_nothing_is_written_at_warn_or_when_off(run, tmp_path: Path, level: str,
                                                enabled: bool) -> None:
    async def main() -> None:
        AccessLog(enabled=enabled).log(*CASES["plain"], 2_000_000_000)  # type: ignore[arg-type]
        logging.getLogger("modelmux.server").error("the only line")

    with log_file(tmp_path, "text", level) as path:
        run(main())
    (line,) = path.read_text().splitlines()
    assert "the only line" in line


def pipe_log(size: int = 1 << 20, **kwargs: int) -> tuple[LineLog, int]:
    """A ``LineLog`` writing to a pipe of ``size`` bytes, and the pipe's non-blocking read end."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, size)
    os.set_blocking(read_end, False)
    return LineLog([LogTarget(fd=write_end)], **kwargs), read_end


def close(lines: LineLog, read_end: int) -> None:
    os.close(read_end)  # first: what is still queued fails (EPIPE) instead of waiting
    lines.close()
    os.close(lines.targets[0].fd)  # type: ignore[arg-type]


def read_all(fd: int) -> bytes:
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 1 << 20):
            data += chunk
    return data


def test_an_idle_buffer_is_written_by_the_timer(run) -> None:
    lines, read_end = pipe_log()

    async def main() -> tuple[bytes, bytes]:
        lines.add("one\n")
        lines.add("two\n")
        first = read_all(read_end)
        readable = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_reader(read_end, readable.set_result, None)
        try:
            await asyncio.wait_for(readable, 5)
        finally:
            asyncio.get_running_loop().remove_reader(read_end)
        return first, read_all(read_end)

    try:
        assert run(main()) == (b"", b"one\ntwo\n")
    finally:
        close(lines, read_end)


def test_a_full_buffer_is_written_at_once_in_whole_lines(run) -> None:
    lines, read_end = pipe_log()
    line = "x" * 99 + "\n"

    async def main() -> bytes:
        for _ in range(count):
            lines.add(line)
        return read_all(read_end)

    count = FLUSH_BYTES // len(line) + 1
    try:
        assert run(main()) == line.encode() * count
    finally:
        close(lines, read_end)


def test_a_stalled_destination_bounds_the_buffer_and_reports_drops(
        run, caplog: pytest.LogCaptureFixture) -> None:
    lines, read_end = pipe_log(size=64 * 1024, max_backlog=256 * 1024)
    line = "y" * 199 + "\n"
    count = 4000  # 800 KB: more than the pipe (64 KiB) and the backlog together

    async def main() -> tuple[int, bytes]:
        for _ in range(count):
            lines.add(line)  # a full pipe never blocks the loop
        dropped = lines.dropped
        received = read_all(read_end)
        for _ in range(100):  # the pipe drains: the queue follows, in bounded rounds
            lines.flush()
            received += read_all(read_end)
            if not lines.targets[0].pending:
                break
        return dropped, received

    try:
        with caplog.at_level(logging.WARNING, "modelmux.access"):
            dropped, received = run(main())
    finally:
        close(lines, read_end)
    assert dropped > 0
    assert received == line.encode() * (count - dropped)  # whole lines, none cut
    assert [r.getMessage() for r in caplog.records] == [
        f"{dropped} access log line(s) dropped: the log destination did not keep up"]


@given(st.integers(min_value=-10**15, max_value=10**15))
def test_durations_from_integers_are_the_float_milliseconds_text(ns: int) -> None:
    """The fast line's text of a duration is ``str`` of the float the logging record holds,
    within half a microsecond of the exact value."""
    assert ns_to_ms_text(ns) == str(ns_to_ms(ns))
    assert abs(ns_to_ms(ns) * 1e6 - ns) <= 500 + abs(ns) * 1e-15


def test_the_stamp_is_the_formatters_time() -> None:
    """``Stamp.at`` agrees with ``logging.Formatter.formatTime`` at every millisecond."""
    stamp, formatter = Stamp(), logging.Formatter()
    for ns in (1_733_480_000_000_000_000, 1_733_480_000_999_000_000, 1_733_480_001_000_000_000,
               1_733_480_001_123_456_789):
        rec = logging.makeLogRecord({})
        rec.created, rec.msecs = ns / 1e9, (ns // 1_000_000) % 1000
        assert stamp.at(ns) == formatter.formatTime(rec)


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("label", ["sk-mm-7Hq2Lx", 'sub with "quotes"', None])
def test_the_key_field_names_the_caller_as_the_formatter_would(fmt: str, label: str | None
                                                               ) -> None:
    """The caller's key label is a field of both lines, quoted when it needs it."""
    rec = record()
    rec.key = label
    line = AccessLine("modelmux.access", 7)
    fast = (line.json if fmt == "json" else line.text)(rec, exchange(), 2_000_000_000)
    fields = access_fields(rec, exchange(), 2_000_000_000)
    assert fields["key"] == label
    if fmt == "json":
        assert json.loads(fast)["key"] == label
    else:
        assert f" key={'-' if label is None else logfmt({'k': label})[2:]} " in fast
