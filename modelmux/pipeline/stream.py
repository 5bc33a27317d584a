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
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import suppress
from typing import Protocol

from modelmux.codec.sse import DONE, encode_data
from modelmux.errors import ModelMuxError
from modelmux.providers.base import CallStats
from modelmux.providers.relay import Relay, Spliceable
from modelmux.upstream import Response
from modelmux.upstream.retry import is_retryable_error

log = logging.getLogger("modelmux.providers")

_DRAIN_BYTES = 64 * 1024
_DRAIN_SECONDS = 1.0


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

    __slots__ = ("_relay", "_response", "_spliced", "on_end", "pieces")

    def __init__(self, source: Spliceable, stats: CallStats) -> None:
        """``stats`` are the try's call's: its time, tokens and a failure go on them."""
        self._response: Response | None = None  # these two while the body is read
        self._relay: Relay | None = None
        self._spliced: tuple[list[bytes], ModelMuxError | None] | None = None
        self.on_end: Callable[[str | None], None] | None = None
        self.pieces = self._read(source, stats)
        """The pieces as one async generator: what iterating this stream gives."""

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.pieces  # iterated as it is: no call of ours per piece

    def __anext__(self) -> Awaitable[bytes]:
        return self.pieces.__anext__()

    def aclose(self) -> Awaitable[None]:
        """End the stream; an upstream answer not read to its end is aborted (not pooled)."""
        return self.pieces.aclose()

    async def splice(self, sink: ClientSink) -> None:
        """Write the rest of the stream to ``sink`` from the upstream's read callback, until
        the relay finishes or the body ends, waiting for the client whenever it falls behind.
        What is left (an error event, the relay's last words) is still read as pieces.

        Raises:
            ClientDisconnected: the client went away (the upstream request is aborted).
        """
        relay, response = self._relay, self._response
        if relay is None or response is None or relay.finished:  # over, or not begun
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
        except ModelMuxError as exc:  # the upstream failed: the error event is read next
            self._spliced = (last, exc)
            return
        except BaseException:
            response.abort()  # not pooled; closing the stream accounts for it
            raise
        self._spliced = (last, None)

    async def _read(self, source: Spliceable, stats: CallStats) -> AsyncGenerator[bytes, None]:
        """The pieces: open the try, relay its body; after a ``splice``, only what is left.
        Once over, the stream holds nothing of the try (a door's task may outlive it).

        Raises:
            ModelMuxError: only before the first piece (``retryable`` set).
        """
        start = stats.started_ns or time.perf_counter_ns()
        waiting = True  # until the first piece is ready, time passes waiting on the upstream
        relay: Relay | None = None
        how: str | None = "cancelled"
        try:
            response = self._response = await source.open()
            relay = self._relay = source.new_relay()
            try:
                async with response:
                    async for data in response.iter_bytes():
                        if waiting:
                            stats.wait_ns = time.perf_counter_ns() - start
                        out = relay.feed(data)
                        if relay.early_error is not None:
                            break
                        if out:
                            waiting = False
                            yield out[0] if len(out) == 1 else b"".join(out)
                            spliced = self._spliced
                            if spliced is not None:  # the rest went to the client meanwhile
                                self._spliced = None
                                out, failure = spliced
                                if failure is not None:
                                    raise failure
                        if relay.finished:
                            if out and out[-1] == DONE:  # a clean end: keep the connection
                                await _drain(response)
                            break
                    else:
                        out = relay.close()
                        if out:
                            yield b"".join(out)
            except ModelMuxError as exc:
                if not relay.started:
                    exc.retryable = is_retryable_error(exc)
                    raise
                log.warning("provider %s: stream failed mid-way: %s", source.provider,
                            exc.message)
                broke(stats, exc.code)
                frame = getattr(relay, "error_frame", None)  # a relay in another format
                yield frame(exc) if frame is not None else encode_data(exc.body())
                how = None
                return
            error = relay.early_error
            if error is not None:
                error.retryable = is_retryable_error(error)
                raise error
            how = None
        finally:
            self._response = self._relay = self._spliced = None
            stats.total_ns = time.perf_counter_ns() - start
            if waiting:
                stats.wait_ns = stats.total_ns
            if relay is not None:
                stats.tokens = relay.usage
                stats.cache = getattr(relay, "cache", None)
            on_end = self.on_end
            if on_end is not None:
                self.on_end = None
                on_end(how)


async def _drain(response: Response) -> None:
    """Read the little that follows the terminal event so the connection can be pooled."""
    with suppress(ModelMuxError, TimeoutError):
        async with asyncio.timeout(_DRAIN_SECONDS):
            await response.read(_DRAIN_BYTES)


class Pieces(Protocol):
    """A served stream as the exchange reads it: a ``RelayedStream``, which can splice, or
    the pieces of a stream that cannot (an async generator, a watcher reading each piece)."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...
    def __anext__(self) -> Awaitable[bytes]: ...
    def aclose(self) -> Awaitable[None]: ...
