"""The pooled response: status, headers and a body stream that gives its connection back.

The body comes from a ``BodySource``: an HTTP/1.1 connection or one HTTP/2 stream. Reading to
the end or closing releases it (and tells the pool); an error or cancellation aborts it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol

from modelmux.upstream.budget import BodyBudget
from modelmux.upstream.errors import UpstreamClosed, UpstreamProtocolError
from modelmux.upstream.origin import Origin, ResponseHead

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class BodySource(Protocol):
    """What a ``Response`` reads from: ``HTTP11Connection`` or ``H2ClientStream``."""

    @property
    def origin(self) -> Origin: ...

    async def receive_body_chunk(self, read_timeout: float | None) -> bytes | None: ...

    async def splice(self, on_body: Callable[[bytes], bool],
                     read_timeout: float | None) -> bool: ...

    def response_closed(self) -> None: ...

    def abort(self) -> None: ...


class Response:
    """Status, headers and a body stream that gives its connection back when read or closed.

    ``headers`` names are lower-case. Use ``async with``: leaving the block releases the
    connection, and leaving it by an exception (cancellation too) closes it instead of pooling.
    """

    __slots__ = ("status", "headers", "reason", "_budget", "_conn", "_on_release", "_started",
                 "_state", "_timeout")

    def __init__(
        self,
        connection: BodySource,
        head: ResponseHead,
        read_timeout: float | None,
        on_release: Callable[[], None] | None = None,
        budget: BodyBudget | None = None,
    ) -> None:
        """``budget`` bounds what ``read`` buffers together with every other response's."""
        self.status, self.headers, self.reason = head
        self._conn = connection
        self._timeout = read_timeout
        self._on_release = on_release
        self._budget = budget
        self._state = "open"  # -> "done" (body read to the end) or "closed" (abandoned)
        self._started = False  # some of the body was taken (read, iterated or spliced)

    @property
    def is_closed(self) -> bool:
        """True once the connection has been given back (body read to the end, or closed)."""
        return self._state != "open"

    def get_header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def iter_bytes(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive; the upstream may only send as fast as this is read."""
        return _BodyIterator(self)

    async def splice(self, on_body: Callable[[bytes], bool]) -> bool:
        """Give the body to ``on_body`` as it arrives, from the connection's read callback,
        until it returns False (returns False) or the body ends (returns True, and the
        connection goes back). Errors as ``iter_bytes``."""
        if self._state == "done":
            return True
        if self._state == "closed":
            raise UpstreamClosed(f"{self._conn.origin}: response was closed before its end")
        self._started = True
        try:
            ended = await self._conn.splice(on_body, self._timeout)
        except BaseException:
            self._release(abort=True)
            raise
        if ended:
            self._release(abort=False, state="done")
        return ended

    async def read(self, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
        """The rest of the body in one piece, its bytes held against the budget meanwhile.

        A declared length (Content-Length) over ``max_bytes`` or over what is left of the
        budget is refused before any body byte is read; the connection is then closed (an
        HTTP/2 stream reset), as on every error here.

        It returns or raises with the connection given back: pooled at the end of the body,
        closed on any error (cancellation too), so the caller need not close the response.

        Raises:
            UpstreamProtocolError: the body is longer than ``max_bytes``
                (``upstream_response_too_large``).
            UpstreamBufferFull: the body does not fit in what is left of the budget.
            UpstreamClosed: the response was closed before its end.
        """
        length = None if self._started else self.get_header(b"content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        if declared is not None and declared > max_bytes:
            raise self._too_large(max_bytes, f"of {declared} bytes (declared) exceeds")
        budget = self._budget
        held = 0
        parts: list[bytes] = []
        try:
            if budget is not None and declared:
                if not budget.take(declared):
                    self._release(abort=True)
                    raise budget.refuse(self._conn.origin, declared)
                held = declared
            total = 0
            conn, timeout = self._conn, self._timeout
            if self._state == "done":
                return b""
            while True:  # _next, written out: one coroutine frame less per piece
                if self._state != "open":
                    raise UpstreamClosed(f"{conn.origin}: response was closed before its end")
                self._started = True
                try:
                    chunk = await conn.receive_body_chunk(timeout)
                except BaseException:
                    self._release(abort=True)
                    raise
                if chunk is None:
                    self._release(abort=False, state="done")
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise self._too_large(max_bytes, "exceeds")
                if budget is not None and total > held:
                    if not budget.take(total - held):
                        self._release(abort=True)
                        raise budget.refuse(self._conn.origin, total - held)
                    held = total
                parts.append(chunk)
            return b"".join(parts)
        finally:
            parts.clear()  # the pieces go before the reclaim the budget may schedule
            if held:
                assert budget is not None
                budget.give_back(held)

    async def aclose(self) -> None:
        """Give the connection back: pooled if the response is complete and reusable."""
        self._release(abort=False)

    def abort(self) -> None:
        """Close the connection now, whatever is left of the body (no await: a callback's)."""
        self._release(abort=True)

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._release(abort=exc_type is not None)

    def _too_large(self, max_bytes: int, how: str) -> UpstreamProtocolError:
        """Close the connection; the error to raise for a body over ``max_bytes``."""
        self._release(abort=True)
        return UpstreamProtocolError(
            f"{self._conn.origin}: response body {how} the limit of {max_bytes} bytes",
            code="upstream_response_too_large",
        )

    async def _next(self) -> bytes | None:
        if self._state == "done":
            return None
        if self._state == "closed":
            raise UpstreamClosed(f"{self._conn.origin}: response was closed before its end")
        self._started = True
        try:
            chunk = await self._conn.receive_body_chunk(self._timeout)
        except BaseException:
            self._release(abort=True)
            raise
        if chunk is None:
            self._release(abort=False, state="done")
        return chunk

    def _release(self, *, abort: bool, state: str = "closed") -> None:
        if self._state != "open":
            return
        self._state = state
        if abort:
            self._conn.abort()
        else:
            self._conn.response_closed()
        if self._on_release is not None:
            self._on_release()


class _BodyIterator:
    __slots__ = ("_response",)

    def __init__(self, response: Response) -> None:
        self._response = response

    def __aiter__(self) -> _BodyIterator:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._response._next()
        if chunk is None:
            raise StopAsyncIteration
        return chunk
