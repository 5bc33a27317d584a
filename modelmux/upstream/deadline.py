"""One loop timer for a sequence of waits, each with its own deadline.

A model's stream is read once per event, and each read waits with a read timeout. Making a
loop timer for every wait and cancelling it when data comes was a measurable part of each
event's cost. ``WaitTimer`` keeps one: a wait whose deadline is not earlier than the pending
timer only records it, and the timer re-arms itself for the current deadline when it fires
before it. Whether the deadline has passed is decided by the deadline the timer was set for,
not by reading the clock, which a loop may read a little before a timer's time (uvloop rounds
to milliseconds).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["WaitTimer"]


class WaitTimer:
    """Calls ``expired()`` when a wait outlives its deadline; ``stop()`` when done for good."""

    __slots__ = ("_at", "_deadline", "_expired", "_handle")

    def __init__(self, expired: Callable[[], None]) -> None:
        self._expired = expired
        self._handle: asyncio.TimerHandle | None = None
        self._at = 0.0  # the loop time _handle was set for
        self._deadline: float | None = None  # the current wait's, or None

    def start(self, deadline: float | None) -> None:
        """A wait begins; it may last until ``deadline`` (loop time; None: without limit)."""
        self._deadline = deadline
        if deadline is not None and (self._handle is None or self._at > deadline):
            self.stop()
            self._handle = asyncio.get_running_loop().call_at(deadline, self._fire)
            self._at = deadline

    def finish(self) -> None:
        """The wait is over; the timer stays armed for the next one."""
        self._deadline = None

    def stop(self) -> None:
        """Cancel the timer (the connection or stream is done)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        deadline = self._deadline
        if deadline is None:
            return
        if deadline <= self._at:
            self._expired()
        else:
            self.start(deadline)
