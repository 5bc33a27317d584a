"""The admin event stream's publisher: one sampling task while anyone watches, none otherwise.

``EventHub`` runs one sampling task while at least one client watches: the first subscriber
starts it, the last one to leave cancels it, so an unwatched gateway does no work for the
stream. Each subscriber has a small queue; a client that reads slower than the snapshots come
loses the older ones, never makes the hub buffer more. The route is ``api.events``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec

from modelmux.codec.sse import encode_event
from modelmux.observability.live import LiveView

INTERVAL = 1.0
QUEUE_SIZE = 2

_encode = msgspec.json.Encoder().encode
DeploymentsSource = Callable[[], dict[str, dict[str, object]]]


class EventHub:
    """Subscribers and the one sampling task that feeds them while there are any."""

    def __init__(self, view: LiveView, deployments: DeploymentsSource, *,
                 interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.view = view
        self.deployments = deployments  # rebound to the new router after a reload
        self.extra: Callable[[], dict[str, Any]] = dict
        self.interval = interval
        self.clock = clock
        self._queues: set[asyncio.Queue[bytes | None]] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """Whether the sampling task exists (only while someone subscribes)."""
        return self._task is not None

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def subscribe(self) -> asyncio.Queue[bytes | None]:
        """A queue of encoded events (None: the stream is over); starts sampling if idle."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        if self._task is None:
            self.view.reset()
            self._task = asyncio.get_running_loop().create_task(self._run())
        return queue

    def unsubscribe(self, queue: asyncio.Queue[bytes | None]) -> None:
        """Forget ``queue``; the last one out stops the sampling task."""
        self._queues.discard(queue)
        if not self._queues and self._task is not None:
            self._task.cancel()
            self._task = None

    def snapshot(self) -> dict[str, Any]:
        """One sample now (also what the first event of a new stream carries)."""
        return self.view.sample(self.clock(), self.deployments(), self.extra(),
                                watchers=len(self._queues))

    def publish(self) -> None:
        """Sample once and hand the event to every subscriber."""
        data = encode_event(_encode(self.snapshot()), event="snapshot")
        for queue in self._queues:
            _offer(queue, data)

    async def _run(self) -> None:
        while True:
            self.publish()
            await asyncio.sleep(self.interval)

    def close(self) -> None:
        """End every stream (shutdown): each subscriber reads None next."""
        for queue in self._queues:
            _offer(queue, None)
        if self._task is not None:
            self._task.cancel()
            self._task = None


def _offer(queue: asyncio.Queue[bytes | None], item: bytes | None) -> None:
    """Put ``item``, dropping the oldest event when the subscriber is behind."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)
