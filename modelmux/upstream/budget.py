"""The process-wide budget of bytes buffered for non-streamed upstream answers, and giving
memory back to the OS after large ones.

Each ``Response.read`` holds a share of one ``BodyBudget`` while it gathers a body, so many
large answers at once cannot together hold more than ``limit`` bytes. Built once per process
(the first ``App``) and handed to every pool a reload builds after it.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import sys
from collections.abc import Callable

from modelmux import errors

log = logging.getLogger("modelmux.upstream")

DEFAULT_BUDGET = 256 * 1024 * 1024
LARGE_ANSWER = 8 * 1024 * 1024  # a share this big, given back, makes memory worth reclaiming
RECLAIM_INTERVAL = 1.0  # seconds between two reclaims at most


class UpstreamBufferFull(errors.ModelMuxError):
    """Non-streamed upstream answers together already hold the whole buffer budget.

    A 503 that says nothing about the upstream's health: it opens no circuit and is not
    retried on another deployment.
    """

    status = 503
    type = "server_error"
    code = "upstream_buffer_full"


def malloc_trimmer() -> Callable[[], None] | None:
    """glibc's ``malloc_trim(0)`` as a callable, or None off Linux or without glibc (musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int

    def call() -> None:
        trim(0)

    return call


def reclaimer() -> Callable[[], None]:
    """Collect reference cycles, then hand free heap pages back to the OS where glibc can.

    The collection matters: a failed request's traceback can keep its large body alive in a
    cycle until the next full collection, which a quiet server may not run for a long time.
    """
    trim = malloc_trimmer()

    def reclaim() -> None:
        gc.collect()
        if trim is not None:
            trim()

    return reclaim


class BodyBudget:
    """Bytes buffered for non-streamed answers, all requests together, up to ``limit``.

    ``take`` reserves bytes (False when they would not fit), ``give_back`` returns them. A
    share of at least ``large`` bytes given back runs ``reclaim`` (default: ``reclaimer()``)
    on the event loop, at most once per ``interval`` seconds, so a burst's freed memory goes
    back to the OS. One event loop uses a budget.
    """

    __slots__ = ("_last", "_pending", "_reclaim", "in_use", "interval", "large", "limit")

    def __init__(
        self,
        limit: int = DEFAULT_BUDGET,
        *,
        reclaim: Callable[[], None] | None = None,
        large: int = LARGE_ANSWER,
        interval: float = RECLAIM_INTERVAL,
    ) -> None:
        if limit < 1:
            raise ValueError("the upstream buffer budget must be at least 1 byte")
        self.limit = limit
        self.in_use = 0
        self.large = large
        self.interval = interval
        self._reclaim = reclaim if reclaim is not None else reclaimer()
        self._last: float | None = None
        self._pending: asyncio.TimerHandle | None = None

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False (nothing reserved) when they would exceed ``limit``."""
        if self.in_use + size > self.limit:
            return False
        self.in_use += size
        return True

    def give_back(self, size: int) -> None:
        """Return ``size`` reserved bytes; a large share schedules a reclaim."""
        self.in_use -= size
        if size < self.large or self._pending is not None:
            return
        loop = asyncio.get_running_loop()
        last = self._last
        delay = 0.0 if last is None else max(0.0, last + self.interval - loop.time())
        self._pending = loop.call_later(delay, self._run_reclaim)

    def refuse(self, origin: object, size: int) -> UpstreamBufferFull:
        """The error for an answer whose ``size`` more bytes do not fit, logged once here."""
        log.warning("upstream %s: answer refused, %d bytes more would exceed the %d-byte buffer "
                    "budget for non-streamed answers (%d in use)", origin, size, self.limit,
                    self.in_use)
        return UpstreamBufferFull(
            "too many large upstream answers are being buffered at once; try again shortly",
            headers=[(b"retry-after", b"1")],
        )

    def _run_reclaim(self) -> None:
        self._pending = None
        self._last = asyncio.get_running_loop().time()
        self._reclaim()
