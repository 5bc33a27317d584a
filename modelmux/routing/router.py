"""Fallback across the providers serving one model: which to try, in what order, and bookkeeping.

``Router`` keeps one ``CircuitBreaker`` per provider and turns the candidates of a request
(``ModelIndex.candidates``, config order) into attempts: a provider whose circuit is open is
skipped; when every circuit is open, the first candidate is tried anyway (unguarded), so a
gateway never answers a 503 of its own making. ``is_failover_error`` decides which errors move
on to the next candidate. Pure: no I/O, the clock is injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from modelmux import errors
from modelmux.errors import ModelMuxError, RateLimited, ServiceUnavailable
from modelmux.providers.errors import is_retryable_error
from modelmux.routing.breaker import BreakerPolicy, CircuitBreaker
from modelmux.upstream.errors import UpstreamConnectError, UpstreamTLSError
from modelmux.upstream.retry import parse_retry_after

T = TypeVar("T")


def is_failover_error(error: ModelMuxError) -> bool:
    """True for failures another deployment of the same model may not share.

    Rate limits (429), overload (529/503), upstream 5xx, resets, timeouts and connection
    errors; never the client's own mistakes (400, 404, 413, …) nor upstream auth failures.
    """
    if is_retryable_error(error):
        return True
    if isinstance(error, errors.UpstreamTimeout):
        return True
    if isinstance(error, UpstreamConnectError):
        return not isinstance(error, UpstreamTLSError) and error.code != "upstream_pool_closed"
    return False


def retry_after_of(error: ModelMuxError) -> float | None:
    """The ``retry-after`` a rate-limited or overloaded answer carried, in seconds, if any."""
    if not isinstance(error, (RateLimited, ServiceUnavailable)):
        return None
    for name, value in error.headers:
        if name.lower() == b"retry-after":
            return parse_retry_after(value)
    return None


@dataclass(slots=True)
class Attempt(Generic[T]):
    """One try at one candidate; ``guarded`` when its breaker granted it (and wants a verdict)."""

    name: str
    target: T
    guarded: bool


class Router:
    """One breaker per provider name, and the order in which candidates are tried."""

    def __init__(self, names: Iterable[str] = (), *, policy: BreakerPolicy | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or BreakerPolicy()
        self.clock = clock
        self.breakers: dict[str, CircuitBreaker] = {n: CircuitBreaker(self.policy) for n in names}

    def breaker(self, name: str) -> CircuitBreaker:
        """The breaker of ``name`` (made on first use for a provider unknown at start-up)."""
        breaker = self.breakers.get(name)
        if breaker is None:
            breaker = self.breakers[name] = CircuitBreaker(self.policy)
        return breaker

    def attempts(self, candidates: Sequence[tuple[str, T]]) -> Iterator[Attempt[T]]:
        """The attempts to make, lazily: each breaker is asked only when its turn comes.

        Every guarded attempt yielded must be reported with ``succeeded``, ``failed`` or
        ``released`` before the next one is asked for. If no breaker allowed anything, one
        unguarded attempt at the first candidate follows.
        """
        granted = False
        for name, target in candidates:
            if self.breaker(name).allow(self.clock()):
                granted = True
                yield Attempt(name, target, True)
        if not granted and candidates:
            name, target = candidates[0]
            yield Attempt(name, target, False)

    def succeeded(self, attempt: Attempt[T]) -> None:
        if attempt.guarded:
            self.breaker(attempt.name).on_success(self.clock())

    def failed(self, attempt: Attempt[T], error: ModelMuxError) -> None:
        """Report an attempt that ended in ``error``: a failover error counts against the
        provider (a ``retry-after`` opens its circuit for that long); any other is no verdict."""
        if not attempt.guarded:
            return
        breaker = self.breaker(attempt.name)
        if is_failover_error(error):
            breaker.on_failure(self.clock(), retry_after_of(error))
        else:
            breaker.release(self.clock())

    def released(self, attempt: Attempt[T]) -> None:
        """An attempt ended with no verdict (client gone, internal error)."""
        if attempt.guarded:
            self.breaker(attempt.name).release(self.clock())

    def snapshot(self) -> dict[str, dict[str, object]]:
        now = self.clock()
        return {name: breaker.snapshot(now) for name, breaker in self.breakers.items()}
