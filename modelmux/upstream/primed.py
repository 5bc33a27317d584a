"""A request's outcome known before the coroutine that makes the request runs.

A caller that sent a request from a callback and then hands the work to a coroutine (the chat
lane, ``api.lane``) leaves what it got, a ``Response`` or an error, in ``PRIMED`` within the
coroutine's context; ``ConnectionPool.request`` for the same URL and body takes it there
instead of sending again, so the upstream sees the request once and the coroutine goes on
(status mapping, retries, fallback) exactly as if it had sent it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from modelmux.upstream.origin import Origin
from modelmux.upstream.response import Response

__all__ = ["PRIMED", "InHand", "Primed"]


class Primed:
    """What ``pool.request(url, body)`` is to return (``response``) or raise (``error``)."""

    __slots__ = ("body", "error", "response", "taken", "url")

    def __init__(self, url: str, body: bytes, *, response: Response | None = None,
                 error: Exception | None = None) -> None:
        self.url, self.body, self.response, self.error = url, body, response, error
        self.taken = False  # once: a task the handler starts sees its context's copy too

    def matches(self, url: str, body: bytes) -> bool:
        """Whether a request of ``body`` to ``url`` is the primed one, not taken yet."""
        return not self.taken and self.url == url and self.body == body

    def take(self) -> Response:
        """The response.

        Raises:
            the primed error.
        """
        self.taken = True
        if self.error is not None:
            raise self.error
        assert self.response is not None
        return self.response


PRIMED: ContextVar[Primed | None] = ContextVar("modelmux_primed", default=None)


class InHand:
    """A ``BodySource`` whose whole body was read already (the connection went back)."""

    __slots__ = ("_body", "origin")

    def __init__(self, origin: Origin, body: bytes) -> None:
        self.origin = origin
        self._body: bytes | None = body

    async def receive_body_chunk(self, read_timeout: float | None) -> bytes | None:
        body, self._body = self._body, None
        return body or None

    async def splice(self, on_body: Callable[[bytes], bool], read_timeout: float | None) -> bool:
        body, self._body = self._body, None
        if body:
            on_body(body)
        return True

    def response_closed(self) -> None:
        self._body = None

    def abort(self) -> None:
        self._body = None
