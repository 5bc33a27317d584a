"""What an HTTP/1.1 connection offers a whole request to before it starts a task for it.

A handler may carry a ``lane`` (``api.lane.ChatLane``): a way to answer some requests from
read callbacks, with no task and no coroutine. The connection offers it a request whose head
and body arrived together (``Lane.take``); the lane answers it and calls ``lane_finished``,
or gives it back before anything was written (``lane_fallback``), and the connection then
runs the handler as for any request. The server knows nothing of routes: only the request
targets the lane asks for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import asyncio
    from contextvars import Context

    from modelmux.server.exchange import Exchange


class LaneHost(Protocol):
    """The connection, as a lane that took its request sees it."""

    def lane_finished(self) -> None:
        """The answer was written (``Exchange.reply``): end the exchange, go on to the next."""

    def lane_fallback(self, context: Context | None = None) -> asyncio.Future[None] | None:
        """Nothing was written: run the handler for the exchange, as without a lane (in
        ``context``, when given: what the lane leaves the handler); its task, or None when
        the connection is gone."""


class Ticket(Protocol):
    """A request a lane holds."""

    def cancel(self) -> None:
        """The client went away: drop the request's upstream work; the connection ends the
        exchange."""


class Lane(Protocol):
    """Answers some whole requests from callbacks."""

    targets: frozenset[bytes]
    """The request targets (exact, with no query) worth holding a task back for."""

    def take(self, exchange: Exchange, host: LaneHost) -> Ticket | None:
        """Take ``exchange`` (its body complete), or None to leave it to the handler, having
        changed nothing."""
