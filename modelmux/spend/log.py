"""``SpendLog``: the spend log's writer, off the request path.

The cost stage hands it one ``SpendRow`` per request (``add``: a deque append, no I/O). A
background task writes them in batches of up to ``batch`` rows at least every ``interval``
seconds. While the store fails, rows wait, up to ``max_pending``; what does not fit is dropped,
counted (``dropped``) and logged, and no request ever waits. ``aclose`` writes what is left.
Rows older than the retention are deleted at start and then once an hour.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from modelmux.spend import db
from modelmux.spend.account import SpendRow

__all__ = ["SpendLog", "Writer"]

log = logging.getLogger("modelmux.spend")

Writer = Callable[[Callable[..., Any], Any], Awaitable[Any]]
"""``store.run``: runs ``fn(connection, arg)`` on the store's thread."""

DAY = 86_400.0
PRUNE_EVERY = 3600.0
MAX_BACKOFF = 30.0


class SpendLog:
    """Batches rows to the store; bounded while the store is down."""

    def __init__(self, run: Writer, *, retention_days: int, batch: int = 500,
                 interval: float = 1.0, max_pending: int = 100_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.run = run
        self.retention = retention_days * DAY
        self.batch = batch
        self.interval = interval
        self.max_pending = max_pending
        self.clock = clock
        self.pending: deque[SpendRow] = deque()
        self.written = 0
        self.dropped = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failing = False
        self._pruned_at = 0.0

    def add(self, row: SpendRow) -> None:
        """Queue one row (the cost stage's sink); starts the writer on first use."""
        if len(self.pending) >= self.max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning("spend log: %d row(s) waiting and the store is not taking them; "
                            "%d dropped so far", len(self.pending), self.dropped)
            return
        self.pending.append(row)
        if self._task is None and not self._closing:
            self._task = asyncio.get_running_loop().create_task(self._loop(),
                                                                name="modelmux-spend-log")
        if len(self.pending) >= self.batch:
            self._wake.set()

    async def flush(self) -> bool:
        """Write every pending row now; False when the store failed (the rows stay)."""
        while self.pending:
            rows = [self.pending[i] for i in range(min(self.batch, len(self.pending)))]
            try:
                await self.run(db.insert, rows)
            except Exception as exc:
                if not self._failing:
                    log.warning("spend log: the store refused %d row(s) (%s); they wait, up "
                                "to %d", len(rows), exc, self.max_pending)
                self._failing = True
                return False
            for _ in rows:
                self.pending.popleft()
            self.written += len(rows)
            if self._failing:
                log.info("spend log: the store takes rows again (%d dropped meanwhile)",
                         self.dropped)
                self._failing = False
        return True

    async def prune(self) -> int:
        """Delete the rows past the retention; returns how many."""
        now = self.clock()
        self._pruned_at = now
        return int(await self.run(db.prune, now - self.retention))

    async def _loop(self) -> None:
        backoff = self.interval
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), backoff)
            except TimeoutError:
                pass
            self._wake.clear()
            ok = await self.flush()
            backoff = self.interval if ok else min(backoff * 2, MAX_BACKOFF)
            if ok and self.clock() - self._pruned_at >= PRUNE_EVERY:
                try:
                    await self.prune()
                except Exception as exc:
                    log.warning("spend log: pruning old rows failed: %s", exc)

    async def aclose(self) -> None:
        """Stop the writer and write what is left (one try); what stays unwritten is logged."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            self._wake.set()  # the loop ends after the write under way, if any
            await asyncio.gather(task, return_exceptions=True)
        if not await self.flush() and self.pending:
            log.error("spend log: %d row(s) could not be written at stop", len(self.pending))
