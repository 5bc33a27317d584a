"""Limits held in this process: the pure token buckets of ``routing.limits``, per deployment.

The default store, and the Redis store's fallback while Redis is unreachable. Under
``serve --workers N`` each process holds ``1/share`` of every limit (at least one slot), so
the workers of one host together never exceed it, unless ``max_concurrent`` is below N (the
config check warns).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from modelmux.routing.limits import Concurrency, DeploymentLimits, per_minute
from modelmux.routing.models import DeploymentSpec
from modelmux.routing.store import Lease, LimitStore, StoreStatus


def split_limits(spec: DeploymentSpec, now: float, share: int) -> DeploymentLimits:
    """``spec``'s buckets, each ``1/share`` of the configured limit (one worker's part)."""
    return DeploymentLimits(per_minute(spec.rpm / share, now) if spec.rpm else None,
                            per_minute(spec.tpm / share, now) if spec.tpm else None,
                            Concurrency(max(1, spec.max_concurrent // share))
                            if spec.max_concurrent else None)

class MemoryLimits:
    """``LimitStore`` over in-process buckets; every call is synchronous underneath."""

    def __init__(self, share: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        self.share = max(1, share)
        self.clock = clock
        self.limits: dict[str, DeploymentLimits] = {}

    def of(self, spec: DeploymentSpec) -> DeploymentLimits:
        """The buckets of ``spec`` (made on first use)."""
        limits = self.limits.get(spec.id)
        if limits is None:
            limits = self.limits[spec.id] = split_limits(spec, self.clock(), self.share)
        return limits

    def try_acquire(self, spec: DeploymentSpec, tokens: float) -> Lease | float:
        """``acquire`` without the coroutine: the lease, or seconds to wait."""
        wait = self.of(spec).try_acquire(self.clock(), tokens)
        return Lease(spec.id, tokens) if wait == 0.0 else wait

    async def acquire(self, spec: DeploymentSpec, tokens: float) -> Lease | float:
        return self.try_acquire(spec, tokens)

    def settle(self, lease: Lease, used: float) -> None:
        if lease.settled:
            return
        lease.settled = True
        limits = self.limits.get(lease.key)
        if limits is not None:
            limits.settle(self.clock(), lease.tokens, used)

    def settle_here(self, key: str, reserved: float, used: float) -> None:
        """``settle`` of a grant made on the buckets of ``key`` without a lease (read by the
        caller itself, as the admit stage does); reads the clock only when it has to."""
        limits = self.limits.get(key)
        if limits is not None and (used != reserved or limits.concurrency is not None):
            limits.settle(self.clock(), reserved, used)

    def give_back(self, key: str, reserved: float) -> None:
        """``settle_here`` of a grant that never ran."""
        self.settle_here(key, reserved, 0.0)

    def carry(self, old: LimitStore, ids: Iterable[str]) -> None:
        source = getattr(old, "fallback", old)  # a Redis store's own buckets
        if not isinstance(source, MemoryLimits) or source.share != self.share:
            return
        for ident in ids:
            limits = source.limits.get(ident)
            if limits is not None:
                self.limits[ident] = limits

    def left(self, spec: DeploymentSpec) -> tuple[float | None, float | None]:
        """``available`` as of the last acquire, settle or ``available`` of ``spec``, without
        reading the clock: right after ``try_acquire`` it is the same, for less."""
        limits = self.of(spec)
        rpm, tpm = limits.rpm, limits.tpm
        return (rpm.tokens if rpm is not None else None, tpm.tokens if tpm is not None else None)

    def available(self, spec: DeploymentSpec) -> tuple[float | None, float | None]:
        limits, now = self.of(spec), self.clock()
        return (limits.rpm.available(now) if limits.rpm else None,
                limits.tpm.available(now) if limits.tpm else None)

    def status(self) -> StoreStatus:
        return StoreStatus("memory")

    async def aclose(self) -> None:
        return None

