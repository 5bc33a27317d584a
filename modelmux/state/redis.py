"""Limits shared through Redis by every process and host that points at it: the I/O glue.

Each acquire and settle is one atomic Lua script (``state.scripts``) run by ``EVALSHA``,
falling back to ``EVAL`` (which also caches it) when the server answers ``NOSCRIPT``.
Every call is bounded by ``[state] timeout_ms``. Failure policy: when Redis does not
answer, this process decides alone with its own per-process buckets (``routing.memory``,
1/workers of each limit), logs once per outage, shows it in ``/metrics`` and tries Redis
again after ``retry_ms``; a client request never fails because Redis is down.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from modelmux.config.problems import ConfigError
from modelmux.config.state import StateConfig
from modelmux.routing.memory import MemoryLimits
from modelmux.routing.models import DeploymentSpec
from modelmux.routing.store import Lease, LimitStore, StoreStatus
from modelmux.state.scripts import ACQUIRE, RENEW, SETTLE, Script

if TYPE_CHECKING:
    from modelmux.observability.gateway import GatewayMetrics

log = logging.getLogger("modelmux.state")

SLOT_POLL = 0.05
"""Seconds a request queued for a full ``max_concurrent`` waits before asking Redis again."""


def redis_client(config: StateConfig) -> Any:
    """A redis-py asyncio client with bounded, non-retrying calls.

    Raises:
        ConfigError: the ``redis`` package (``modelmux[redis]``) is not installed.
    """
    try:
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError:
        raise ConfigError('[state] backend = "redis" needs the redis package: '
                          "pip install 'modelmux[redis]'") from None
    seconds = config.timeout_ms / 1000
    return redis.asyncio.Redis.from_url(
        config.url, socket_timeout=seconds, socket_connect_timeout=seconds,
        retry=Retry(NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0)


class RedisLimits:
    """``LimitStore`` over one Redis; ``fallback`` decides while Redis is unreachable."""

    def __init__(self, config: StateConfig, fallback: MemoryLimits, *,
                 metrics: GatewayMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Raises:
            ConfigError: the ``redis`` package is missing.
        """
        from redis.exceptions import NoScriptError, RedisError

        self.config = config
        self.fallback = fallback
        self.metrics = metrics
        self.clock = clock
        self.client = redis_client(config)
        self.errors: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self._noscript: type[BaseException] = NoScriptError
        self._sent: set[str] = set()  # SHAs Redis has run for this process
        self._timeout = config.timeout_ms / 1000
        self._up = True
        self._retry_at = 0.0
        self._outages = 0
        self._local = 0
        self._last: dict[str, tuple[float | None, float | None]] = {}
        self._tpm: dict[str, int] = {}  # deployment id -> its tpm, for settling
        self._held: dict[str, set[str]] = {}  # slots key -> slot ids this process holds
        self._tasks: set[asyncio.Task[None]] = set()
        self._renewer: asyncio.Task[None] | None = None

    def key(self, spec_id: str, kind: str) -> str:
        """``prefix{provider/model}:kind``: the braces keep one deployment's keys in one
        Redis Cluster slot."""
        return f"{self.config.key_prefix}{{{spec_id}}}:{kind}"

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[object]) -> Any:
        """Run ``script`` by SHA; on ``NOSCRIPT`` (a restarted or flushed server) by source."""
        async with asyncio.timeout(self._timeout):
            try:
                result = await self.client.evalsha(script.sha, len(keys), *keys, *args)
                self._sent.add(script.sha)
                return result
            except self._noscript:
                if script.sha in self._sent:
                    log.info("Redis lost its script cache; sending the script again")
                self._sent.add(script.sha)
                return await self.client.eval(script.source, len(keys), *keys, *args)

    def reachable(self) -> bool:
        """False during an outage until ``retry_ms`` has passed since the last failure."""
        return self._up or self.clock() >= self._retry_at

    def failed(self, exc: BaseException) -> None:
        """A call failed: start (or extend) an outage; logged once per outage."""
        self._retry_at = self.clock() + self.config.retry_ms / 1000
        if self._up:
            self._up = False
            self._outages += 1
            if self.metrics is not None:
                self.metrics.state_outages.inc(())
            log.warning("Redis at %s is unreachable (%s); rate limits fall back to this "
                        "process's own share until it answers again (retrying every %g ms)",
                        self.config.where(), type(exc).__name__, self.config.retry_ms)

    def answered(self) -> None:
        """A call succeeded: end the outage, if any."""
        if not self._up:
            self._up = True
            log.warning("Redis at %s answers again; rate limits are shared once more",
                        self.config.where())

    def _decide_locally(self, spec: DeploymentSpec, tokens: float) -> Lease | float:
        self._local += 1
        if self.metrics is not None:
            self.metrics.state_local.inc(())
        return self.fallback.try_acquire(spec, tokens)

    async def acquire(self, spec: DeploymentSpec, tokens: float) -> Lease | float:
        if not self.reachable():
            return self._decide_locally(spec, tokens)
        slot = uuid.uuid4().hex if spec.max_concurrent else ""
        keys = (self.key(spec.id, "rpm"), self.key(spec.id, "tpm"), self.key(spec.id, "slots"))
        args = (spec.rpm or 0, spec.tpm or 0, spec.max_concurrent or 0, repr(float(tokens)),
                slot, self.config.lease_ms)
        try:
            wait_ms, full, rpm, tpm = await self.run(ACQUIRE, keys, args)
        except self.errors as exc:
            self.failed(exc)
            return self._decide_locally(spec, tokens)
        self.answered()
        if spec.tpm:
            self._tpm[spec.id] = spec.tpm
        self._last[spec.id] = (float(rpm) if spec.rpm else None,
                               float(tpm) if spec.tpm else None)
        wait_ms = int(wait_ms)
        if wait_ms < 0:
            return math.inf
        if int(full):  # a slot freed on another host wakes no one here: look again soon
            return max(wait_ms / 1000, SLOT_POLL)
        if wait_ms > 0:
            return wait_ms / 1000
        if slot:
            self._held.setdefault(keys[2], set()).add(slot)
            if self._renewer is None or self._renewer.done():
                self._renewer = asyncio.ensure_future(self._renew())
        return Lease(spec.id, tokens, local=False, slot=slot or None)

    def settle(self, lease: Lease, used: float) -> None:
        if lease.local:
            self.fallback.settle(lease, used)
            return
        if lease.settled:
            return
        lease.settled = True
        slots = self.key(lease.key, "slots")
        if lease.slot is not None:
            held = self._held.get(slots)
            if held is not None:
                held.discard(lease.slot)
                if not held:
                    del self._held[slots]
        tpm = self._tpm.get(lease.key, 0)
        delta = used - lease.tokens if tpm else 0.0
        if not delta and lease.slot is None:
            return
        task = asyncio.ensure_future(self._settle(
            (self.key(lease.key, "tpm"), slots), (tpm, repr(float(delta)), lease.slot or "")))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self, keys: tuple[str, str], args: tuple[object, ...]) -> None:
        if not self.reachable():  # during an outage: the slot lapses with its lease
            return
        try:
            await self.run(SETTLE, keys, args)
        except self.errors as exc:  # the slot lapses with its lease; the tokens stay spent
            self.failed(exc)
        else:
            self.answered()

    async def _renew(self) -> None:
        """Extend the leases of the slots this process holds, every third of a lease."""
        period = self.config.lease_ms / 3000
        while self._held:
            await asyncio.sleep(period)
            for key, slots in list(self._held.items()):
                if not slots:
                    continue
                try:
                    await self.run(RENEW, (key,), (self.config.lease_ms, *slots))
                except self.errors as exc:
                    self.failed(exc)
                    break
                self.answered()

    def carry(self, old: LimitStore, ids: Iterable[str]) -> None:
        self.fallback.carry(old, ids)  # the shared limits are in Redis already

    def available(self, spec: DeploymentSpec) -> tuple[float | None, float | None]:
        return self._last.get(spec.id, (None, None)) if self._up \
            else self.fallback.available(spec)

    def status(self) -> StoreStatus:
        return StoreStatus("redis", self._up, self._outages, self._local)

    async def settled(self) -> None:
        """Wait for the settles sent in the background (each bounded by the timeout)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2 * self._timeout)

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
        await self.settled()
        for task in list(self._tasks):
            task.cancel()
        try:
            await self.client.aclose()
        except self.errors:
            pass
