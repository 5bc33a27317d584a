"""The interface every limit store offers the request path, and the lease it hands out.

A store grants or refuses one attempt at a deployment against its ``rpm``, ``tpm`` and
``max_concurrent`` limits (all three or none), and settles the grant when the attempt ends.
``acquire`` may do I/O (Redis); ``settle`` never blocks the caller. Implementations:
``routing.memory`` (this process) and ``state.redis`` (every process sharing one Redis).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from modelmux.routing.models import DeploymentSpec


def has_limits(spec: DeploymentSpec) -> bool:
    """Whether ``spec`` declares any of ``rpm``, ``tpm``, ``max_concurrent``."""
    return spec.rpm is not None or spec.tpm is not None or spec.max_concurrent is not None


@dataclass(slots=True)
class Lease:
    """One granted attempt: its reserved ``tokens`` and, with Redis, its concurrency slot.

    ``local`` is True when this process's own buckets granted it (the memory store, or the
    Redis store's fallback during an outage); it is then settled locally too.
    """

    key: str
    tokens: float
    local: bool = True
    slot: str | None = None
    settled: bool = field(default=False)


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """What ``/metrics`` shows of a store: its backend and, for Redis, whether it answers."""

    backend: str
    up: bool = True
    outages: int = 0
    local_decisions: int = 0


class LimitStore(Protocol):
    """Per-deployment limit state, keyed by deployment id (``provider/model``)."""

    async def acquire(self, spec: DeploymentSpec, tokens: float) -> Lease | float:
        """Reserve one request and ``tokens`` at ``spec``: the lease, or seconds to wait
        (``inf``: until one of its requests finishes, or never for an oversized request)."""
        ...

    def settle(self, lease: Lease, used: float) -> None:
        """The attempt is over having used ``used`` tokens (0: it never ran): correct the
        reservation and free the slot. Idempotent; never blocks."""
        ...

    def carry(self, old: LimitStore, ids: Iterable[str]) -> None:
        """After a reload: share ``old``'s local buckets of the deployments ``ids`` (their
        limits unchanged), so the old App's in-flight requests still count here."""
        ...

    def available(self, spec: DeploymentSpec) -> tuple[float | None, float | None]:
        """RPM and TPM tokens available (the last known values for a remote store)."""
        ...

    def status(self) -> StoreStatus:
        """Backend name and health, for metrics."""
        ...

    async def aclose(self) -> None:
        """Stop background work and close connections."""
        ...
