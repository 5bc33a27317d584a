"""The access line's twins: the native and the pure ``AccessLine`` give the same text for any
record, and that text is what ``logs.setup``'s formatters write for the ``logging`` record of
the same request (hypothesis, with hostile strings: controls, quotes, separators, non-ASCII,
lone surrogates, long values)."""

from __future__ import annotations

import json
import logging
import re
import time
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelmux import _accel
from modelmux.observability import access
from modelmux.observability._access_line_py import ns_to_ms
from modelmux.observability.access import FIELDS, MAX_TEXT, access_fields, logfmt
from modelmux.observability.linelog import Stamp
from modelmux.observability.logs import ONE_LINE, JsonFormatter, TextFormatter
from modelmux.observability.record import RequestRecord
from modelmux.providers.base import CallStats
from tests.observability.test_access_lines import CASES
from tests.observability.test_log_injection import EVIL, RAW
from tests.twins import import_twin, twin_params

NAME = "modelmux.access"
PID = 4321
PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TIME = re.compile(r'^\{"time": "[^"]*"|^[^A-Z]*')

HOSTILE = ["", " ", '"', "=", "\\", "a b", 'x"=\\y', "\x00", "\n", "\r\n", "\t", "\x08\x0c",
           "\x1b[2J", "\x7f", "\x85", "\x9b", "\u2028", "\u2029", "\u200b", "\xa0", "\ud800",
           "modèle-中文", "😀", EVIL, "\x01" * 3000, '"' * 2500, "m" * 5000]
ascii_strings = st.one_of(
    st.from_regex(r"[A-Za-z0-9._:/-]{1,40}", fullmatch=True),  # what an ordinary line holds
    st.text(st.characters(max_codepoint=127)),
    st.sampled_from([text for text in HOSTILE if text.isascii()]),
)
"""What the native twin formats itself; it hands any other line to the pure twin."""
strings = ascii_strings | st.text() | st.sampled_from(HOSTILE) | st.text(
    st.characters(categories=["Cs", "Cc", "Zl", "Zp", "Zs", "Cf"]))
nanos = st.integers(min_value=0, max_value=10**13) | st.integers(min_value=-10**15,
                                                                  max_value=10**15)
"""Durations a float holds to the microsecond (the formatter's record holds floats)."""
wide_nanos = nanos | st.integers(min_value=-10**19, max_value=10**19)
counts = st.integers(min_value=0, max_value=10**6) | st.integers(min_value=-2**70,
                                                                 max_value=2**70)
costs = st.none() | st.floats(allow_nan=False, allow_infinity=False) | counts


@st.composite
def requests(draw: st.DrawFn, odd: bool = False) -> tuple[RequestRecord, SimpleNamespace]:
    """A finished request as the access log reads it; ``odd`` also draws what the types allow
    but the gateway never sets (None for a request id, a bool for a count, NaN)."""
    text = ascii_strings if draw(st.booleans()) else strings  # half the lines all ASCII
    maybe = st.none() | text
    text = maybe if odd else text
    ns = wide_nanos if odd else nanos
    number = counts | st.booleans() | st.none() | st.floats() if odd else counts
    done = RequestRecord(draw(text), "/v1/chat/completions")  # type: ignore[arg-type]
    done.model, done.provider, done.key = draw(maybe), draw(maybe), draw(maybe)
    done.mode = draw(st.none() | st.sampled_from(["standard", "buffered", "never"]) | text)
    if draw(st.booleans()):
        done.stats = CallStats()
        done.stats.attempts = draw(number)
        done.stats.tokens = draw(st.none() | st.tuples(number, number))
        done.overhead_ns = draw(st.none() | ns)
    done.cost_usd = draw(costs | st.just(float("nan")) if odd else costs)
    if draw(st.booleans()):
        done.span = SimpleNamespace(trace_id=draw(text))  # type: ignore[assignment]
    finished = SimpleNamespace(
        method=draw(text), path=draw(text), client=draw(text),
        status=draw(st.integers(min_value=100, max_value=599) | (number if odd else counts)),
        started=draw(st.booleans()), ended=draw(st.booleans()), started_ns=draw(ns),
        head_ns=draw(st.just(0) | ns), bytes_received=draw(number), bytes_sent=draw(number))
    return done, finished


@pytest.fixture(scope="module", params=twin_params("access_line",
                                                   "modelmux.observability._access_line_py"))
def twin(request: pytest.FixtureRequest) -> ModuleType:
    return import_twin(request.param)


@pytest.fixture(scope="module")
def both() -> tuple[Any, Any]:
    """The native and the pure ``AccessLine`` (the pure one twice without a native build)."""
    pure = import_twin("modelmux.observability._access_line_py")
    native = pure
    if not _accel.pure_forced():
        native = import_twin("modelmux._speedups.access_line")
    return native.AccessLine(NAME, PID), pure.AccessLine(NAME, PID)


def formatter_line(fmt: str, done: RequestRecord, finished: SimpleNamespace, now_ns: int) -> str:
    """What the formatter ``logs.setup`` installs writes for the access log's logging record."""
    fields = access_fields(done, finished, now_ns)  # type: ignore[arg-type]
    logger = logging.getLogger(NAME)
    record = logger.makeRecord(NAME, logging.INFO, __file__, 1, ONE_LINE, (logfmt(fields),),
                               None, extra=fields)
    record.process = PID
    return (JsonFormatter() if fmt == "json" else TextFormatter()).format(record)


@PROPERTY
@given(request=requests(odd=True), now_ns=wide_nanos,
       wall_ns=st.integers(min_value=0, max_value=4 * 10**18))
def test_the_twins_write_the_same_line(both: tuple[Any, Any],
                                       request: tuple[RequestRecord, SimpleNamespace],
                                       now_ns: int, wall_ns: int) -> None:
    native, pure = both
    done, finished = request
    for fmt in ("text", "json"):
        assert (outcome(getattr(native, fmt), done, finished, now_ns, wall_ns)
                == outcome(getattr(pure, fmt), done, finished, now_ns, wall_ns))


def outcome(write: Any, *args: object) -> tuple[str, str]:
    """The line, or the error's type (a None status cannot be compared with 400)."""
    try:
        return "line", write(*args)
    except Exception as exc:  # noqa: BLE001 - the type is what is compared
        return "error", type(exc).__name__


@PROPERTY
@given(request=requests(), now_ns=nanos, wall_ns=st.integers(min_value=0, max_value=4 * 10**18))
def test_the_line_is_the_formatters_line_for_any_request(
        twin: ModuleType, request: tuple[RequestRecord, SimpleNamespace], now_ns: int,
        wall_ns: int) -> None:
    """One line, no raw control or separator, the formatter's text after the time; the JSON
    line parses, with the formatter's keys in order and the fields' values."""
    done, finished = request
    line = twin.AccessLine(NAME, PID)
    for fmt in ("text", "json"):
        fast = getattr(line, fmt)(done, finished, now_ns, wall_ns)
        assert fast.endswith("\n") and len(fast.splitlines()) == 1
        assert not RAW.search(fast[:-1])
        assert TIME.sub("", fast[:-1]) == TIME.sub("", formatter_line(fmt, done, finished, now_ns))
        stamp = Stamp().at(wall_ns)
        if fmt == "text":
            assert fast.startswith(f"{stamp} INFO {NAME}[{PID}]: request_id=")
            continue
        entry = json.loads(fast)
        assert list(entry) == ["time", "level", "logger", "pid", "message", *FIELDS]
        assert entry["time"] == stamp and entry["pid"] == PID
        fields = access_fields(done, finished, now_ns)  # type: ignore[arg-type]
        assert {key: entry[key] for key in FIELDS} == fields
        assert entry["model"] == (None if done.model is None else done.model[:MAX_TEXT])


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_long_hostile_line_is_whole(twin: ModuleType, fmt: str) -> None:
    """A line far longer than the native twin's stack buffer, mostly escapes."""
    done = RequestRecord("r" * 3000, "/v1/chat/completions")
    done.model = "\x01" * 500
    finished = SimpleNamespace(method="POST", path='/"\\' * 4000, client="127.0.0.1:1",
                               status=200, started=True, ended=True, started_ns=0, head_ns=0,
                               bytes_received=1, bytes_sent=2)
    fast = getattr(twin.AccessLine(NAME, PID), fmt)(done, finished, 5_000_000, 0)
    assert TIME.sub("", fast[:-1]) == TIME.sub("", formatter_line(fmt, done, finished, 5_000_000))
    assert len(fast) > 20_000


def test_the_durations_are_milliseconds_to_the_microsecond(twin: ModuleType) -> None:
    done = RequestRecord("r1", "/v1/chat/completions")
    done.mode, done.overhead_ns = "standard", 999_500
    finished = SimpleNamespace(method="POST", path="/p", client="c", status=200, started=True,
                               ended=True, started_ns=10, head_ns=10 + 1_000_499,
                               bytes_received=0, bytes_sent=0)
    line = twin.AccessLine(NAME, PID).text(done, finished, 10 + 12_345_678_501, 0)
    assert " latency_ms=12345.679 ttft_ms=1.0 overhead_ms=1.0 " in line
    assert ns_to_ms(999_500) == 1.0


def test_without_a_wall_time_the_line_shows_now(twin: ModuleType) -> None:
    """``wall_ns`` None: the native twin reads the same clock as ``time.time_ns``."""
    done = RequestRecord("r1", "/v1/chat/completions")
    finished = SimpleNamespace(method="GET", path="/health", client="c", status=200,
                               started=True, ended=True, started_ns=0, head_ns=0,
                               bytes_received=0, bytes_sent=0)
    before = time.time_ns() // 1_000_000_000
    stamp = twin.AccessLine(NAME, PID).text(done, finished, 0)[:19]
    after = time.time_ns() // 1_000_000_000
    shown = {time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s)) for s in (before, after)}
    assert stamp in shown


def test_the_access_log_uses_the_native_twin_when_built() -> None:
    expected = "modelmux.observability._access_line_py"
    if not _accel.pure_forced() and _accel.native_available("access_line"):
        expected = "modelmux._speedups.access_line"
    assert access.AccessLine.__module__ == expected


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("case", CASES)
def test_the_known_cases_through_each_twin(twin: ModuleType, case: str, fmt: str) -> None:
    done, finished = CASES[case]
    fast = getattr(twin.AccessLine(NAME, PID), fmt)(done, finished, 3_315_402_123, 10**18)
    assert TIME.sub("", fast[:-1]) == TIME.sub("", formatter_line(fmt, done, finished,
                                                                  3_315_402_123))
