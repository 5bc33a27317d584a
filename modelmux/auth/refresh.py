"""Refresh-ahead for one expiring credential, shared by the AWS, Entra ID and Google sources.

A credential is fetched on first use; once one is held, requests never wait: ``margin`` seconds
before expiry (at most half its lifetime) a fetch starts in the background and requests go on
with the still-valid one. One fetch runs at a time; a failed background fetch is retried after
a jittered, doubling delay; ``aclose`` cancels a fetch in flight. How to fetch is the subclass's
business (``_fetch``), and so is what a refused request means.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable
from contextlib import suppress
from typing import ClassVar, Generic, TypeVar

from modelmux.errors import ModelMuxError

log = logging.getLogger("modelmux.auth")

T = TypeVar("T")

REFRESH_MARGIN = 300.0
"""Seconds before expiry at which a background refresh starts (capped at half the lifetime)."""
RETRY_FIRST = 1.0
"""Seconds before the first retry of a failed background refresh (then doubled, jittered)."""
RETRY_CAP = 60.0


class RefreshAhead(Generic[T]):
    """One credential kept fresh; ``clock`` is wall-clock seconds (read on every call, so a
    test may swap it), ``jitter`` a source of floats in [0, 1)."""

    what: ClassVar[str] = "credentials"
    """What is fetched, for log lines (``AWS credentials``, ``Entra ID token``)."""

    def __init__(self, *, label: str, margin: float, clock: Callable[[], float],
                 held: T | None = None, jitter: Callable[[], float] = random.random) -> None:
        self.label = label
        self.margin = margin
        self.clock = clock
        self.refreshes = 0
        self.failures = 0
        self._held = held
        self._expires = math.inf
        self._refresh_at = math.inf
        self._inflight: asyncio.Task[T] | None = None
        self._jitter = jitter

    async def _fetch(self) -> tuple[T, float | None]:
        """A new credential and when it expires (Unix seconds, None for never)."""
        raise NotImplementedError

    async def current(self) -> T:
        """The held credential while valid, starting a background refresh when one is due;
        otherwise waits, single-flight, for a fetch. Subclasses name it for what they hold.

        Raises:
            ModelMuxError: what ``_fetch`` raised (``UpstreamAuthFailed``: refused or none;
                ``UpstreamConnectError``: the endpoint could not be reached).
        """
        held = self._held
        if held is not None:
            now = self.clock()
            if now < self._expires:
                if now >= self._refresh_at and self._inflight is None:
                    self._start()
                return held
        task = self._inflight or self._start()
        return await asyncio.shield(task)

    def invalidate(self, value: T | None = None) -> bool:
        """Forget the held credential (only if it is still ``value``, when given); True when
        one was dropped. A late refusal of an old credential leaves a newer one alone."""
        if self._held is not None and (value is None or value == self._held):
            self._held = None
            return True
        return False

    async def aclose(self) -> None:
        """Cancel a fetch in flight and wait for it to end."""
        task = self._inflight
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError, ModelMuxError):
                await task

    def _start(self) -> asyncio.Task[T]:
        task = self._inflight = asyncio.get_running_loop().create_task(self._run())
        task.add_done_callback(self._settled)
        return task

    async def _run(self) -> T:
        started = self.clock()
        value, expires = await self._fetch()
        self._held = value
        self._expires = math.inf if expires is None else expires
        lifetime = max(self._expires - started, 0.0)
        self._refresh_at = self._expires - min(self.margin, lifetime / 2)
        self.refreshes += 1
        self.failures = 0
        return value

    def _settled(self, task: asyncio.Task[T]) -> None:
        if self._inflight is task:
            self._inflight = None
        if task.cancelled() or (exc := task.exception()) is None:
            return
        self.failures += 1
        delay = min(RETRY_CAP, RETRY_FIRST * 2 ** min(self.failures - 1, 16))
        self._refresh_at = self.clock() + delay * (0.5 + self._jitter() / 2)
        log.warning("%s: %s refresh failed: %s", self.label, self.what, exc)
