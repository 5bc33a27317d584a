"""One deadline at a time for an HTTP/1.1 connection, over as few loop timers as it can.

``H1Deadline`` keeps the head, body or idle deadline now running and calls ``_expired`` when
it passes. A pending loop timer that fires no later than a new deadline is kept (firing
early, it re-arms for the rest), so a keep-alive connection arms about one loop timer per
timeout period instead of one per request. A base of ``h1.H1Protocol``, which sets ``loop``
and decides what a passed deadline means.
"""

from __future__ import annotations

import asyncio


class H1Deadline:
    """The connection's deadline and the loop timer behind it."""

    loop: asyncio.AbstractEventLoop
    _timer: asyncio.TimerHandle | None
    _timer_at: float  # the loop time _timer was set for
    _deadline: float | None  # the deadline now running, or None

    def _arm(self, seconds: float) -> None:
        """Time out ``seconds`` from now."""
        deadline = self.loop.time() + seconds
        self._deadline = deadline
        if self._timer is None or self._timer_at > deadline:
            self._stop_timer()
            self._timer = self.loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    def _disarm(self) -> None:
        """No deadline runs now; a pending loop timer lapses when it fires."""
        self._deadline = None

    def _stop_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        if deadline > self._timer_at:  # armed again since: wait for the rest
            self._timer = self.loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline
            return
        self._deadline = None
        self._expired()

    def _expired(self) -> None:
        """The running deadline passed (the connection decides what that means)."""
        raise NotImplementedError
