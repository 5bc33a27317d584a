"""The call stage: every attempt decision of a chat call, up to the first byte.

``Dispatcher`` runs a chat call against the router's plan. Each deployment is tried again
after a retryable failure as its provider's ``RetryPolicy`` allows (a provider makes one try
per call); a failover error moves on to the next deployment (``[routing.fallback]``); every
candidate at its rate limit means a bounded wait (then a 429 with ``retry-after``); optional
hedging starts a second deployment when the first is slow to its first byte (one hedge even
with fallback off), the first to answer wins and the other is cancelled (its HTTP/1.1
connection is closed, its HTTP/2 stream reset). Every wait between tries follows one rule,
``upstream.retry.Backoff`` (the provider's numbers for a retry, ``[routing.fallback]``'s for a
fallback), through one sleep; retries, fallbacks and hedges draw on one budget of tries per
request (``[routing] max_attempts``). One deployment's tries (each started, counted and its
outcome recorded) are ``pipeline.tries``; the order of deployments is the router's; this
module falls back, sleeps, races and sums the tries.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelmux.config.routing import RoutingConfig
from modelmux.errors import InternalError, ModelMuxError, RateLimited
from modelmux.pipeline.stream import Pieces
from modelmux.pipeline.tries import First, Tries, complete, first_byte
from modelmux.providers.base import Call, CallStats, Provider
from modelmux.routing.models import DeploymentSpec
from modelmux.routing.router import Attempt, Router, is_failover_error, retry_after_of
from modelmux.routing.store import Lease, has_limits
from modelmux.upstream.retry import Backoff

if TYPE_CHECKING:
    from modelmux.observability.calls import Watcher
    from modelmux.observability.gateway import GatewayMetrics
    from modelmux.observability.record import RequestRecord

log = logging.getLogger("modelmux.api")

NewCall = Callable[[DeploymentSpec], Call]
RunningTry = tuple[Attempt, Call, int]  # the attempt, its call, when it started (ns)
RunningTries = dict[asyncio.Future[First], RunningTry]


@dataclass(slots=True)
class Served:
    """The attempt that produced the first byte, and what it produced."""

    attempt: Attempt
    call: Call
    provider: Provider  # the attempt's deployment's
    answer: bytes = b""
    chunks: Pieces | None = None
    first: bytes = b""
    errors_before: int = 0  # len(call.stats.errors) at the first byte


class Failed(Exception):
    """Every attempt failed: ``error`` is what the client gets; ``provider`` and ``stats``
    (all attempts summed) are for its headers and the access log."""

    def __init__(self, error: ModelMuxError, provider: Provider | None, stats: CallStats) -> None:
        super().__init__(error.message)
        self.error, self.provider, self.stats = error, provider, stats


def _merge(into: CallStats, stats: CallStats) -> None:
    into.attempts += stats.attempts
    into.retries += stats.retries
    into.errors = [*stats.errors, *into.errors]


class Dispatcher:
    """Runs calls against one ``Router`` with one ``[routing]`` configuration."""

    def __init__(self, router: Router, config: RoutingConfig, metrics: GatewayMetrics,
                 rand: Callable[[], float] = random.random, *,
                 watcher: Watcher | None = None) -> None:
        self.router = router
        self.config = config
        self.metrics = metrics
        self.rand = rand
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self.hedge_timer: Callable[[float], Awaitable[None]] = asyncio.sleep  # the hedge delay
        self._freed = asyncio.Event()
        self.queued = 0  # requests waiting for a rate-limited deployment
        self.watcher = watcher  # tracing or debug_bodies; None when both are off
        fb = config.fallback
        self.backoff = Backoff(fb.base_ms / 1000, fb.max_ms / 1000, fb.backoff == "constant")

    def finish(self, served: Served) -> None:
        """The served response is over: free the deployment's slot, wake queued requests.

        A stream that broke after its first byte (the transport recorded another error: a
        reset, a timeout, an early close) counts as a failure of its deployment.
        """
        stats = served.call.stats
        self.router.finish(served.attempt, sum(stats.tokens) if stats.tokens else None,
                           broke=len(stats.errors) > served.errors_before)
        self._wake()

    def settle(self, attempt: Attempt, tokens: float | None) -> None:
        """``finish`` for an attempt served without a ``Served`` (the chat lane's): a whole
        answer that used ``tokens``."""
        self.router.finish(attempt, tokens)
        self._wake()

    def _wake(self) -> None:
        """Wake the requests queued for a limited deployment (none queued: nothing to do;
        a waiter counts itself in ``queued`` before it first awaits)."""
        if self.queued:
            self._freed.set()
            self._freed = asyncio.Event()

    def _hedge_delay(self, attempt: Attempt) -> float:
        hedging = self.config.hedging
        if hedging.percentile is not None and len(attempt.live.ttfts) >= hedging.min_samples:
            value = attempt.live.ttft_percentile(hedging.percentile)
            if value is not None:
                return value
        return hedging.delay_ms / 1000

    async def serve(self, plan: list[DeploymentSpec], tokens: float, new_call: NewCall,
                    streamed: bool, record: RequestRecord | None = None) -> Served:
        """Try ``plan`` until a deployment produces its first byte.

        ``record``, when given, names the deployment being tried, then the served one, and
        gets the served call's stats (or, on failure, every attempt's).

        Raises:
            Failed: a client error (not retried elsewhere), or every attempt failed, or
                every deployment stayed at its rate limit past ``queue_timeout_ms``
                (a 429 with ``retry-after``).
        """
        fb = self.config.fallback
        budget = 1 + fb.max_retries if fb.enabled else 1
        hedging = self.config.hedging.enabled
        hedge_budget = max(budget, 2) if hedging else budget  # one hedge, fallback or not
        tries = Tries(self.config.max_attempts, self.sleep)  # every try, retries included
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.queue_timeout_ms / 1000
        running: RunningTries = {}
        tried: list[Attempt] = []
        total = CallStats()
        failure: ModelMuxError | None = None
        last: Provider | None = plan[0].provider if plan else None
        first_ns = 0

        def launch(attempt: Attempt
                   ) -> tuple[Coroutine[object, None, Any], RunningTry, bool] | None:
            """Start an attempt: as a task when hedging (to race it), else hand back its
            coroutine, for ``serve`` to run to its first byte in its own frame (no task, no
            hop, no frame between), the entry that goes into ``running`` with it, and True
            when the coroutine is ``complete`` itself (a whole answer with no watcher: its
            bytes, not a ``First``; ``first_byte`` would only add a frame)."""
            nonlocal first_ns, last
            spec = attempt.spec
            provider = last = spec.provider
            if record is not None:
                record.provider, record.provider_type = provider.name, provider.type
                record.upstream_model = spec.model
            call = new_call(spec)
            started = time.perf_counter_ns()
            first_ns = first_ns or started
            tried.append(attempt)
            tries.left -= 1
            if hedging:
                coro = first_byte(provider, call, streamed, self.watcher, record, tries)
                running[asyncio.ensure_future(coro)] = (attempt, call, started)
                return None
            if streamed or self.watcher is not None:
                return (first_byte(provider, call, streamed, self.watcher, record, tries),
                        (attempt, call, started), False)
            call.stats.started_ns = started  # what first_byte does first
            return complete(provider, call, tries), (attempt, call, started), True

        async def next_attempt(allow_wait: bool, limit: int = budget) -> Attempt | None:
            """Admit the next candidate of the plan while fewer than ``limit`` were tried and
            the budget of tries lasts; wait (bounded) while all are limited."""
            while len(tried) < limit and tries.left > 0:
                waits = []
                for spec in plan:
                    if tried and any(a.spec.id == spec.id for a in tried):
                        continue
                    # _admit, written out: no coroutine unless the deployment has limits
                    got = self.router.admit(spec, tokens)
                    if got is not None and has_limits(spec):
                        got = await self._acquire(got, spec, tokens)
                    if isinstance(got, Attempt):
                        return got
                    if got is not None:
                        self.metrics.limited.inc((spec.id,))
                        waits.append(got)
                if not waits:
                    if not tried and plan:  # every circuit open: the first, unguarded
                        got = await self._admit(plan[0], tokens, guarded=False)
                        if isinstance(got, Attempt):
                            return got
                        waits.append(got if got is not None else math.inf)
                    else:
                        return None
                remaining = deadline - loop.time()
                if not allow_wait or remaining <= 0:
                    if not tried:
                        raise self._limited(min(waits), plan)
                    return None
                freed = asyncio.ensure_future(self._freed.wait())
                self.queued += 1
                try:
                    await asyncio.wait((freed,), timeout=min(min(waits), remaining))
                finally:
                    self.queued -= 1
                    freed.cancel()
            return None

        try:
            while True:
                if not running:
                    attempt = await next_attempt(allow_wait=True)
                    if attempt is None:
                        break
                    if tried and failure is not None:
                        same = last is not None and attempt.spec.provider is last
                        delay = self.backoff.delay(len(tried) - 1, self.rand,
                                                   retry_after_of(failure) if same else None)
                        if delay > 0:
                            try:
                                await tries.sleep(delay)
                            except BaseException:
                                self.router.released(attempt)
                                raise
                    to_run = launch(attempt)
                    if to_run is not None:  # not hedging: the outcome in a finished future
                        coro, entry, whole = to_run
                        outcome: asyncio.Future[First] = loop.create_future()
                        try:
                            got = await coro
                            outcome.set_result((got, None, b"") if whole else got)
                        except ModelMuxError as exc:
                            outcome.set_exception(exc)
                        except BaseException:
                            self.router.released(attempt)
                            raise
                        running[outcome] = entry
                if not hedging:
                    done = set(running)  # finished already
                elif len(running) == 1 and len(tried) < hedge_budget and tries.left > 0:
                    done = await self._until_hedge(running)
                else:
                    done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    extra = await next_attempt(allow_wait=False, limit=hedge_budget)
                    if extra is not None:
                        log.info("hedging: %s slow to its first byte, also trying %s",
                                 tried[-1].spec.id, extra.spec.id)
                        self.metrics.hedges.inc(())
                        launch(extra)  # hedging: a task
                    else:
                        await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    continue
                for task in done:
                    attempt, call, started = running.pop(task)
                    try:
                        answer, chunks, first = task.result()
                    except ModelMuxError as exc:
                        self.router.failed(attempt, exc)
                        self._wake()
                        _merge(total, call.stats)
                        if not is_failover_error(exc):
                            raise Failed(exc, attempt.spec.provider, total) from None
                        log.info("deployment %s failed before the first byte (%s); trying the "
                                 "next one of the plan, if any", attempt.spec.id, exc.code)
                        failure = exc
                        continue
                    except BaseException:
                        self.router.released(attempt)
                        raise
                    self.router.succeeded(attempt, complete=not streamed)
                    try:
                        if running:  # a hedge lost (no coroutine otherwise)
                            await self._cancel(running, total)
                    except BaseException:  # the client left while the losers were cleaned up
                        self.router.released(attempt)
                        if chunks is not None:
                            await chunks.aclose()
                        raise
                    stats = call.stats
                    if len(tried) > 1:  # the others' tries, failed or cancelled, count too
                        _merge(stats, total)
                    stats.wait_ns += started - first_ns
                    if attempt is not tried[0]:
                        self.metrics.fallbacks.inc(())
                    provider = attempt.spec.provider
                    if record is not None:  # the winner, when a hedge raced it
                        record.provider, record.provider_type = provider.name, provider.type
                        record.upstream_model, record.stats = attempt.spec.model, stats
                    return Served(attempt, call, provider, answer, chunks, first,
                                  len(stats.errors))
        except BaseException as exc:
            await self._cancel(running, total)
            if record is not None and isinstance(exc, Failed):
                record.stats = exc.stats
            raise
        if failure is None:
            failure = InternalError("no deployment could be tried")
        elif tries.left <= 0:
            log.info("all %d tries of the request spent; the client gets the last error (%s)",
                     self.config.max_attempts, failure.code)
        if record is not None:
            record.stats = total
        raise Failed(failure, last, total)

    async def _until_hedge(self, running: RunningTries) -> set[asyncio.Future[First]]:
        """Wait for the one running attempt, at most until ``hedge_timer`` ends its delay;
        what finished (empty: time to hedge)."""
        timer = asyncio.ensure_future(
            self.hedge_timer(self._hedge_delay(next(iter(running.values()))[0])))
        try:
            done, _ = await asyncio.wait((*running, timer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        return {task for task in running if task in done}

    async def _admit(self, spec: DeploymentSpec, tokens: float, *, guarded: bool = True
                     ) -> Attempt | float | None:
        """The breaker, then the limit store: the attempt; None when its circuit refuses;
        the seconds to wait (``inf``: until one of its requests finishes) when its limits do."""
        attempt = self.router.admit(spec, tokens, guarded=guarded)
        if attempt is None or not has_limits(spec):
            return attempt
        return await self._acquire(attempt, spec, tokens)

    async def _acquire(self, attempt: Attempt, spec: DeploymentSpec, tokens: float
                       ) -> Attempt | float:
        """``_admit``'s second half, for a deployment with limits: the attempt with its lease,
        or (the attempt released) the seconds to wait."""
        try:
            got = await self.router.limits.acquire(spec, tokens)
        except BaseException:
            self.router.released(attempt)
            raise
        if isinstance(got, Lease):
            attempt.lease = got
            return attempt
        self.router.released(attempt)
        return got

    def _limited(self, wait: float, plan: list[DeploymentSpec]) -> Failed:
        seconds = 1 if math.isinf(wait) else max(1, math.ceil(wait))
        error = RateLimited(
            "Every deployment of this model is at its configured rate limit; retry later.",
            code="rate_limit_exceeded", headers=[(b"retry-after", b"%d" % seconds)])
        return Failed(error, plan[0].provider if plan else None, CallStats())

    async def _cancel(self, running: RunningTries, total: CallStats) -> None:
        """Cancel the attempts still running (a hedge that lost), closing their upstreams."""
        if not running:
            return
        tasks = list(running)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for task in tasks:
            attempt, call, _ = running.pop(task)
            if not task.cancelled() and task.exception() is None:
                chunks = task.result()[1]
                if chunks is not None:  # it answered just before the cancel: close it here
                    await chunks.aclose()
            self.router.released(attempt)
            _merge(total, call.stats)
        self._wake()
