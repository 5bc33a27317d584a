"""The load loop: one keep-alive HTTP/1.1 connection per concurrency slot, driven by callbacks.

Each connection writes the same pre-encoded request, feeds replies to ``wire.ResponseParser``
and sends the next request from ``data_received`` itself, as wrk does. ``LoadRun`` owns the
phases (warmup, measure, stop), the budget, the timeout sweep and the ``Tally``; it knows
nothing of the CLI or of how the servers were started.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Sequence
from functools import partial
from time import perf_counter_ns
from typing import cast

import msgspec

from modelmux.bench.procfs import tree_rss
from modelmux.bench.stats import LogHistogram
from modelmux.bench.wire import COMPLETE, ResponseParser, Target, WireError

TICK = 0.05


class Plan(msgspec.Struct, frozen=True):
    """How much load: ``duration`` seconds or ``requests`` after a warmup of seconds or requests."""

    concurrency: int
    duration: float | None = None
    requests: int | None = None
    warmup_seconds: float = 0.0
    warmup_requests: int = 0
    timeout: float = 30.0
    stream: bool = False


class Tally:
    """What one run measured (nanoseconds; counts include only the measured phase)."""

    def __init__(self) -> None:
        self.latency = LogHistogram()
        self.ttfb = LogHistogram()
        self.gap = LogHistogram()
        self.responses = 0
        self.ok = 0
        self.streams = 0
        self.events = 0
        self.rx_bytes = 0
        self.errors: dict[str, int] = {}
        self.elapsed_ns = 0
        self.rss_peak = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class _Conn(asyncio.Protocol):
    """One keep-alive connection: send, parse, record, send again."""

    def __init__(self, run: LoadRun) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.parser: ResponseParser | None = None
        self.measured = False
        self.sent = 0
        self.first = 0
        self.last_event = 0
        self.closed: asyncio.Future[None] = run.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.run.conns.add(self)
        self.send()

    def send(self) -> None:
        run = self.run
        assert self.transport is not None
        if not run.take():
            self.transport.close()
            return
        self.parser = ResponseParser()
        self.measured = run.measuring
        self.first = 0
        self.last_event = 0
        self.sent = perf_counter_ns()
        self.transport.write(run.request)

    def data_received(self, data: bytes) -> None:
        now = perf_counter_ns()
        parser = self.parser
        if parser is None:  # bytes nobody asked for
            self.fail(now, "protocol")
            return
        if not self.first:
            self.first = now
        try:
            events = parser.feed(data)
        except WireError:
            self.fail(now, "protocol")
            return
        run = self.run
        if run.recording(self.measured):
            tally = run.tally
            tally.rx_bytes += len(data)
            if events:
                tally.events += events
                if self.last_event:  # the first event's wait is the TTFB, not a gap
                    tally.gap.record(now - self.last_event)
                tally.gap.record(0, events - 1)  # events read together arrived together
        if events:
            self.last_event = now
        if parser.state == COMPLETE:
            self.complete(now, parser)

    def complete(self, now: int, parser: ResponseParser) -> None:
        self.parser = None
        measured, sent, first = self.measured, self.sent, self.first
        assert self.transport is not None
        if parser.keep_alive and not self.run.stopping:
            self.send()  # first the next request, then the bookkeeping: less idle time
        else:
            self.transport.close()
        self.run.finish(measured, sent, first, now, parser)

    def fail(self, now: int, kind: str) -> None:
        """End the request in flight as an error and drop the connection."""
        parser = self.parser
        self.parser = None
        if parser is not None:
            if kind == "connection" and self.run.plan.stream and 200 <= parser.status < 300:
                kind = "truncated"
            self.run.failed(self.measured, now, kind)
        if self.transport is not None:
            self.transport.abort()

    def eof_received(self) -> bool:
        parser = self.parser
        if parser is not None:
            try:
                parser.eof()
            except WireError:
                self.fail(perf_counter_ns(), "connection")
            else:
                self.complete(perf_counter_ns(), parser)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.conns.discard(self)
        if self.parser is not None and not self.run.stopping:
            self.fail(perf_counter_ns(), "connection")
        self.parser = None
        if not self.closed.done():
            self.closed.set_result(None)


class LoadRun:
    """Drive ``plan`` against ``target`` with ``request`` bytes; ``await run()`` for the Tally."""

    def __init__(self, target: Target, request: bytes, plan: Plan, *,
                 watch_pids: Sequence[int] = (),
                 on_tick: Callable[[LoadRun], None] | None = None) -> None:
        if plan.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if (plan.duration is None) == (plan.requests is None):
            raise ValueError("give exactly one of duration and requests")
        self.loop = asyncio.get_running_loop()
        self.target = target
        self.request = request
        self.plan = plan
        self.tally = Tally()
        self.conns: set[_Conn] = set()
        self.by_issue = plan.requests is not None
        self.measuring = not plan.warmup_seconds and not plan.warmup_requests
        self.stopping = False
        self.issued = 0
        self.done = 0
        self.warm_issued = 0
        self.measure_ns = perf_counter_ns()
        self.watch_pids = tuple(watch_pids)
        self.on_tick = on_tick
        self._finished: asyncio.Future[None] = self.loop.create_future()
        self._timers: list[asyncio.TimerHandle] = []
        self._tick_handle: asyncio.TimerHandle | None = None
        self._ssl = ssl.create_default_context() if target.scheme == "https" else None

    @property
    def elapsed_s(self) -> float:
        """Seconds since the measured phase began (0 during warmup)."""
        if not self.measuring:
            return 0.0
        return (perf_counter_ns() - self.measure_ns) / 1e9

    async def run(self) -> Tally:
        """Run to completion; connections are closed when it returns."""
        if self.measuring:
            self._begin_measure()
        elif self.plan.warmup_seconds:
            self._timers.append(self.loop.call_later(self.plan.warmup_seconds, self._begin_measure))
        self._tick_handle = self.loop.call_later(TICK, self._tick)
        slots = [asyncio.ensure_future(self._slot()) for _ in range(self.plan.concurrency)]
        try:
            await self._finished
        finally:
            self.stopping = True
            for handle in self._timers:
                handle.cancel()
            if self._tick_handle is not None:
                self._tick_handle.cancel()
            for conn in list(self.conns):
                if conn.transport is not None:
                    conn.transport.abort()
            # slots end once their connection is closed; a slot stuck in connect is cancelled
            _, pending = await asyncio.wait(slots, timeout=min(self.plan.timeout, 2.0))
            for slot in pending:
                slot.cancel()
            await asyncio.gather(*slots, return_exceptions=True)
        self.tally.rss_peak = max(self.tally.rss_peak, tree_rss(self.watch_pids))
        return self.tally

    def take(self) -> bool:
        """Whether one more request may be sent now (counts it when the budget is in requests)."""
        if self.stopping:
            return False
        if not self.measuring and self.plan.warmup_requests:
            if self.warm_issued < self.plan.warmup_requests:
                self.warm_issued += 1
                return True
            self._begin_measure()
        if self.by_issue and self.measuring:
            if self.issued >= (self.plan.requests or 0):
                return False
            self.issued += 1
        return True

    def _has_work(self) -> bool:
        if self.stopping:
            return False
        return not (self.by_issue and self.measuring and self.issued >= (self.plan.requests or 0))

    def recording(self, measured: bool | None) -> bool:
        """Count it? By send time with a request budget, by completion time with a duration."""
        if self.by_issue and measured is not None:
            return measured
        return self.measuring

    def finish(self, measured: bool, sent: int, first: int, now: int,
               parser: ResponseParser) -> None:
        """Record one complete response to a request sent at ``sent`` (first byte at ``first``)."""
        if not self.recording(measured):
            return
        tally = self.tally
        tally.responses += 1
        status = parser.status
        if not 200 <= status < 300:
            tally.error(f"status_{status}")
        elif self.plan.stream and not parser.done:
            tally.error("truncated")
        else:
            tally.ok += 1
            tally.latency.record(now - sent)
            tally.ttfb.record(first - sent)
            if self.plan.stream:
                tally.streams += 1
        self._counted(now)

    def failed(self, measured: bool | None, now: int, kind: str) -> None:
        """Record one request that got no complete response (``None``: it was never sent)."""
        if not self.recording(measured):
            return
        self.tally.error(kind)
        self._counted(now)

    def _counted(self, now: int) -> None:
        self.done += 1
        if self.by_issue and self.done >= (self.plan.requests or 0):
            self._stop(now)

    def _begin_measure(self) -> None:
        self.measuring = True
        self.measure_ns = perf_counter_ns()
        if self.plan.duration is not None:
            self._timers.append(self.loop.call_later(self.plan.duration, self._stop))

    def _stop(self, now: int | None = None) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.tally.elapsed_ns = (now or perf_counter_ns()) - self.measure_ns
        if not self._finished.done():
            self._finished.set_result(None)

    async def _slot(self) -> None:
        """Keep one connection open for as long as there is work; reconnect when it drops."""
        plan = self.plan
        while self._has_work():
            try:
                _, conn = await asyncio.wait_for(self.loop.create_connection(
                    partial(_Conn, self), self.target.host, self.target.port, ssl=self._ssl,
                ), plan.timeout)
            except (OSError, TimeoutError):
                if not self.take():
                    return
                self.failed(None, perf_counter_ns(), "connect")
                await asyncio.sleep(0.01)  # a refused port must not become a busy loop
                continue
            await conn.closed

    def _tick(self) -> None:
        """Every TICK: time out slow requests, sample memory, report progress."""
        now = perf_counter_ns()
        limit = int(self.plan.timeout * 1e9)
        for conn in list(self.conns):
            if conn.parser is not None and now - conn.sent > limit:
                conn.fail(now, "timeout")
        if self.watch_pids:
            self.tally.rss_peak = max(self.tally.rss_peak, tree_rss(self.watch_pids))
        if self.on_tick is not None:
            self.on_tick(self)
        if not self.stopping:
            self._tick_handle = self.loop.call_later(TICK, self._tick)
