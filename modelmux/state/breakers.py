"""Circuit openings shared through Redis, so every replica skips a deployment one found down.

When a router opens a circuit it publishes the deployment and how long it stays open; every
process reads the open circuits every ``breaker_sync_ms`` and holds its own breaker open at
least as long (``Router.hold_open``). Half-open probes and closing stay each process's own.
Uses the ``RedisLimits`` connection and its failure policy: during an outage nothing is
shared and each process's breakers work alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from modelmux.state.redis import RedisLimits
from modelmux.state.scripts import OPEN, OPENED

log = logging.getLogger("modelmux.state")


class SharedBreakers:
    """Publishes this process's circuit openings and applies the other replicas'."""

    def __init__(self, link: RedisLimits, apply: Callable[[str, float], bool],
                 interval: float) -> None:
        """``apply(deployment id, seconds)`` holds a local circuit open (True if it was not
        already open that long)."""
        self.link = link
        self.apply = apply
        self.interval = interval
        self.key = f"{link.config.key_prefix}breakers"
        self._sync: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def opened(self, deployment_id: str, seconds: float) -> None:
        """The router opened a circuit: publish it in the background (never blocks)."""
        if seconds <= 0 or not self.link.reachable():
            return
        task = asyncio.ensure_future(self._publish(deployment_id, seconds))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, deployment_id: str, seconds: float) -> None:
        try:
            await self.link.run(OPEN, (self.key,), (deployment_id, max(1, int(seconds * 1000))))
        except self.link.errors as exc:
            self.link.failed(exc)
        else:
            self.link.answered()

    def start(self) -> None:
        """Start reading the other replicas' openings (idempotent; needs a running loop)."""
        if self._sync is None or self._sync.done():
            self._sync = asyncio.ensure_future(self._loop())

    async def sync_once(self) -> None:
        """Read the open circuits once and hold them open here."""
        if not self.link.reachable():
            return
        try:
            reply = await self.link.run(OPENED, (self.key,), ())
        except self.link.errors as exc:
            self.link.failed(exc)
            return
        self.link.answered()
        for i in range(0, len(reply) - 1, 2):
            ident = reply[i].decode() if isinstance(reply[i], bytes) else str(reply[i])
            seconds = int(reply[i + 1]) / 1000
            if self.apply(ident, seconds):
                log.info("circuit of %s held open for %.1fs: another replica opened it",
                         ident, seconds)

    async def _loop(self) -> None:
        while True:
            await self.sync_once()
            await asyncio.sleep(self.interval)

    async def aclose(self) -> None:
        if self._sync is not None:
            self._sync.cancel()
            await asyncio.gather(self._sync, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)
