"""The call stage's side of a relayed stream: read, relay, then splice the rest to the client.

A provider's stream is a ``Spliceable`` (its endpoint profile opens the request, its relay
factory reads the answer's format) or, when it cannot splice (``mock``, plugins), its pieces.
``RelayedStream`` opens the first, reads it through its relay up to the first piece and, once
the exchange hands it the client's sink (``splice``), feeds the rest of the body through the
relay to the client from the upstream connection's read callback, with no task in between.
What follows the splice (an error event, the relay's last words) is read as pieces again.
Failures before the first piece raise (``retryable`` when another try may cure them); after
it, the stream ends with an error event and the failure is recorded here (``broke``).
Closing the stream aborts the upstream request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from typing import Protocol

from modelmux.codec.sse import DONE, encode_data
from modelmux.errors import ModelMuxError
from modelmux.providers.base import CallStats, Relay, Spliceable
from modelmux.upstream import Response
from modelmux.upstream.retry import is_retryable_error

log = logging.getLogger("modelmux.providers")

_DRAIN_BYTES = 64 * 1024
_DRAIN_SECONDS = 1.0
_OPENING, _READING, _DRAINING, _ENDING, _TAIL, _DONE = range(6)


class ClientSink(Protocol):
    """Where a spliced stream writes from the upstream read callback: the client's exchange
    (``server.exchange.Sink``). ``push`` returns False when the writer must stop and
    ``await drain()``: the client is slow, or gone (then ``drain`` raises)."""

    def push(self, data: bytes) -> bool: ...
    async def drain(self) -> None: ...


def broke(stats: CallStats, code: str) -> None:
    """A stream failed after its first byte: keep ``code`` on the call (its deployment's
    breaker counts it at the end) and end its try's span with it."""
    stats.errors.append(code)
    watch = stats.watch
    if watch is not None:
        watch.attempt_done(0, code)


class RelayedStream:
    """One try's ``Spliceable``, relayed: an async iterator of client pieces (the chunks one
    upstream read completes, as one piece) that can ``splice`` the rest to the client.
    ``on_end``, when set, hears once how the stream ended: None, or ``"cancelled"`` when it
    was cut short (closed early, the client left)."""

    __slots__ = (
        "_body",
        "_relay",
        "_response",
        "_source",
        "_start",
        "_state",
        "_stats",
        "_tail",
        "_waiting",
        "on_end",
    )

    def __init__(self, source: Spliceable) -> None:
        self._source = source
        self._stats = source.stats
        self._response: Response | None = None
        self._relay: Relay | None = None
        self._body: AsyncIterator[bytes] | None = None
        self._start = 0
        self._waiting = True  # until the first piece is ready, time passes waiting upstream
        self._state = _OPENING
        self._tail = b""
        self.on_end: Callable[[str | None], None] | None = None

    def __aiter__(self) -> RelayedStream:
        return self

    async def __anext__(self) -> bytes:
        """The next piece.

        Raises:
            ModelMuxError: only before the first piece (``retryable`` set).
            StopAsyncIteration: the stream is over.
        """
        state = self._state
        if state != _READING:
            if state != _OPENING:
                return await self._after(state)
            await self._open()
        relay, body = self._relay, self._body
        assert relay is not None and body is not None
        ended = False
        try:
            async for data in body:
                if self._waiting:
                    self._stats.wait_ns = time.perf_counter_ns() - self._start
                out = relay.feed(data)
                if out or relay.finished or relay.early_error is not None:
                    break
            else:
                out = relay.close()
                ended = True
        except ModelMuxError as exc:
            return self._failed(exc)
        except BaseException:
            self._finish("cancelled")
            raise
        error = relay.early_error
        if error is not None:
            if not ended:
                await self._release()
            self._finish(None)
            error.retryable = is_retryable_error(error)
            raise error
        if ended:  # the body is over and its connection back
            self._finish(None)
            if out:
                return b"".join(out)
            raise StopAsyncIteration
        if relay.finished:
            self._state = _DRAINING if out and out[-1] == DONE else _ENDING
            if not out:
                return await self._after(self._state)
        self._waiting = False
        return out[0] if len(out) == 1 else b"".join(out)

    async def splice(self, sink: ClientSink) -> None:
        """Write the rest of the stream to ``sink`` from the upstream's read callback, until
        the relay finishes or the body ends, waiting for the client whenever it falls behind.
        What is left (an error event, the relay's last words) is still read as pieces.

        Raises:
            ClientDisconnected: the client went away (the upstream request is aborted).
        """
        relay, response = self._relay, self._response
        if self._state != _READING or relay is None or response is None:
            return
        last: list[bytes] = []

        def on_body(data: bytes) -> bool:
            nonlocal last
            out = relay.feed(data)
            if out:
                last = out
                if not sink.push(out[0] if len(out) == 1 else b"".join(out)):
                    return False
            return not relay.finished  # started, so a failure is an error event

        try:
            while True:
                ended = await response.splice(on_body)
                if ended or relay.finished:
                    break
                await sink.drain()  # the client fell behind (or left: this raises)
        except ModelMuxError as exc:
            self._tail = self._failed(exc)
            self._state = _TAIL
            return
        except BaseException:
            self._finish("cancelled")
            raise
        if relay.finished:
            self._state = _DRAINING if last and last[-1] == DONE else _ENDING

    async def aclose(self) -> None:
        """End the stream; an upstream answer not read to its end is aborted (not pooled)."""
        state = self._state
        if state == _READING or state == _DRAINING or state == _ENDING:
            self._finish("cancelled")
        self._state = _DONE

    async def _open(self) -> None:
        """Send the try's request and start reading its answer.

        Raises:
            ModelMuxError: as ``Spliceable.open``.
        """
        self._start = self._stats.started_ns or time.perf_counter_ns()
        self._state = _DONE  # until the answer head is in
        try:
            response = await self._source.open()
        except BaseException:
            self._account()
            raise
        self._response = response
        self._relay = self._source.new_relay()
        self._body = response.iter_bytes()
        self._state = _READING

    async def _after(self, state: int) -> bytes:
        """What comes once the relay is done: the tail piece; or, after ``[DONE]``, the little
        that follows, read so the connection can be pooled; then the end."""
        self._state = _DONE
        if state == _TAIL:
            return self._tail
        if state == _DRAINING or state == _ENDING:
            try:
                if state == _DRAINING:
                    with suppress(ModelMuxError, TimeoutError):
                        async with asyncio.timeout(_DRAIN_SECONDS):
                            await self._response.read(_DRAIN_BYTES)  # type: ignore[union-attr]
                await self._release()
            except BaseException:
                self._finish("cancelled")
                raise
            self._finish(None)
        raise StopAsyncIteration

    def _failed(self, exc: ModelMuxError) -> bytes:
        """The upstream failed while read: before the first piece raise ``exc``; after it,
        record the failure and return the error event that ends the stream."""
        relay = self._relay
        assert relay is not None
        self._finish(None)
        if not relay.started:
            exc.retryable = is_retryable_error(exc)
            raise exc
        log.warning("provider %s: stream failed mid-way: %s", self._source.provider, exc.message)
        broke(self._stats, exc.code)
        frame = getattr(relay, "error_frame", None)  # a relay in another format
        return frame(exc) if frame is not None else encode_data(exc.body())

    async def _release(self) -> None:
        """Give the connection back: pooled if the answer is complete and reusable."""
        if self._response is not None:
            await self._response.aclose()

    def _finish(self, how: str | None) -> None:
        """The stream is over: abort what is left of the answer, account for it, tell
        ``on_end``."""
        self._state = _DONE
        if self._response is not None:
            self._response.abort()  # nothing to do once given back
        self._account()
        on_end = self.on_end
        if on_end is not None:
            self.on_end = None
            on_end(how)

    def _account(self) -> None:
        """The stream's time and tokens go on the call's stats."""
        stats = self._stats
        stats.total_ns = time.perf_counter_ns() - self._start
        if self._waiting:
            stats.wait_ns = stats.total_ns
        relay = self._relay
        if relay is not None:
            stats.tokens = relay.usage
            stats.cache = getattr(relay, "cache", None)


class Pieces(Protocol):
    """A served stream as the exchange reads it: a ``RelayedStream``, which can splice, or
    the pieces of a stream that cannot (an async generator, a watcher reading each piece)."""

    def __aiter__(self) -> Pieces: ...
    def __anext__(self) -> Awaitable[bytes]: ...
    def aclose(self) -> Awaitable[None]: ...
