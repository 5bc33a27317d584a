"""One deployment's tries, as the call stage makes them: up to the first byte, and counted.

``complete`` and ``open_stream`` try one deployment again after a retryable failure as its
provider's ``RetryPolicy`` and the request's budget (``Tries``) allow, waiting between tries
by ``upstream.retry.Backoff`` through one sleep. Each try is started and its outcome recorded
here: ``tried`` counts it from what the transport reports and keeps its error code, and a
watcher (tracing, ``debug_bodies``) hears of it. ``first_byte`` is what ``pipeline.call``'s
dispatcher runs per deployment; which deployment comes next is its business, not this one's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import msgspec

from modelmux.errors import InternalError, ModelMuxError
from modelmux.pipeline.stream import Pieces, RelayedStream
from modelmux.providers.base import Call, CallStats, ChatCall, EmbedCall, Provider, TextCall

if TYPE_CHECKING:
    from modelmux.observability.calls import Watcher
    from modelmux.observability.record import RequestRecord

log = logging.getLogger("modelmux.api")
T = TypeVar("T")

First = tuple[bytes, Pieces | None, bytes]
"""One deployment's outcome at its first byte: the whole answer, or the stream and its first
piece."""


class Tries(msgspec.Struct, gc=False):
    """One request's budget of upstream tries, shared by its retries, fallbacks and hedges,
    and the one sleep every backoff between them goes through (a Struct: built in C, once a
    request)."""

    left: int
    sleep: Callable[[float], Awaitable[None]]


async def _again(provider: Provider, call: Call, error: ModelMuxError,
                 tries: Tries | None) -> bool:
    """After a failed try at ``provider``: wait out the backoff and return True when its retry
    policy and the request's budget allow another try, else False (the error goes on to
    fallback or the client). The wait goes through the policy's own sleep when it has one
    (tests), else the request's (``tries``: the dispatcher's); without ``tries`` (one
    deployment on its own) only the policy counts."""
    policy, stats = provider.retry, call.stats
    if not error.retryable or stats.retries >= policy.max_retries:
        return False
    wait = error.retry_after
    if wait is not None and wait > policy.cap:
        return False
    if tries is not None:
        if tries.left <= 0:
            return False
        tries.left -= 1
    delay = policy.backoff.delay(stats.retries, policy.rand, wait)
    stats.retries += 1
    log.info("provider %s: retry %d/%d after %s", provider.name, stats.retries,
             policy.max_retries, error.code)
    sleep = policy.sleep or (asyncio.sleep if tries is None else tries.sleep)
    await sleep(delay)
    return True


def tried(stats: CallStats, code: str | None) -> None:
    """Count the try that just ended from what the transport reports (each request it sent,
    a re-send after a 401 too) and keep its outcome: the codes of the answers it sent again
    after, and ``code``, what it failed with. A try that sent nothing (``mock``, a request
    refused before sending) is no upstream attempt: it counts nothing."""
    sent = stats.sent
    if not sent:
        return
    stats.attempts += sent
    stats.sent = 0
    resent = stats.resent
    if resent is not None:
        stats.errors += resent
        stats.resent = None
    if code is not None:
        stats.errors.append(code)


async def one_try(stats: CallStats, answer: Awaitable[T]) -> T:
    """``answer``, one upstream try made outside a call (a token count), counted and recorded
    on ``stats`` as the call stage's own tries are.

    Raises:
        ModelMuxError: the try's error.
    """
    try:
        got = await answer
    except ModelMuxError as exc:
        tried(stats, exc.code)
        raise
    except BaseException:
        tried(stats, None)
        raise
    tried(stats, None)
    return got


async def complete(provider: Provider, call: Call, tries: Tries | None = None) -> bytes:
    """The whole answer of one deployment (a chat completion, or embeddings), tried again as
    its retry policy (and ``tries``, the request's budget) allows.

    Raises:
        ModelMuxError: the last try's error.
    """
    stats = call.stats
    while True:
        watch = stats.watch
        if watch is not None:
            stats.status = 0
            watch.attempt(stats.attempts)
        try:
            if isinstance(call, ChatCall):  # the common case first: one check
                answer = await provider.complete(call)
            elif isinstance(call, EmbedCall):
                answer = await provider.embed(call)
            else:
                answer = await provider.complete_text(call)
        except ModelMuxError as exc:
            tried(stats, exc.code)
            if watch is not None:
                watch.attempt_done(stats.status, exc.code)
            if not await _again(provider, call, exc, tries):
                raise
        except BaseException:
            tried(stats, None)
            raise
        else:
            if stats.resent is None:  # tried(stats, None), written out: the common case
                stats.attempts += stats.sent
                stats.sent = 0
            else:
                tried(stats, None)
            if watch is not None:
                watch.attempt_done(stats.status, None)
            return answer


async def open_stream(provider: Provider, call: ChatCall | TextCall, tries: Tries | None = None
                      ) -> tuple[Pieces, bytes]:
    """One deployment's stream and its first piece, tried again as its retry policy (and
    ``tries``, the request's budget) allows: a provider's ``Spliceable`` is relayed here
    (``RelayedStream``), a stream that cannot splice is read as it is.

    Raises:
        ModelMuxError: the last try's error before its first piece (an empty stream is an
            ``InternalError``).
    """
    stats = call.stats
    while True:
        chunks: Pieces | None = None
        watch = stats.watch
        if watch is not None:
            stats.status = 0
            watch.attempt(stats.attempts)
        try:
            source = (provider.stream_text(call) if isinstance(call, TextCall)
                      else provider.stream(call))
            opened: Pieces
            if hasattr(source, "__anext__"):  # its pieces: nothing to splice
                chunks = opened = source  # type: ignore[assignment]
                first = await anext(opened)
            else:
                relayed = RelayedStream(source, stats)  # type: ignore[arg-type]
                chunks = opened = relayed
                first = await anext(relayed.pieces)
            if stats.resent is None:  # tried(stats, None), written out: the common case
                stats.attempts += stats.sent
                stats.sent = 0
            else:
                tried(stats, None)
            if watch is not None:
                watch.attempt_done(stats.status, None)
            return opened, first
        except StopAsyncIteration:
            assert chunks is not None
            await chunks.aclose()
            empty = InternalError(f"provider {provider.name!r} produced an empty stream")
            tried(stats, empty.code)
            if watch is not None:
                watch.attempt_done(stats.status, empty.code)
            raise empty from None
        except ModelMuxError as exc:
            if chunks is not None:
                await chunks.aclose()
            tried(stats, exc.code)
            if watch is not None:
                watch.attempt_done(stats.status, exc.code)
            if not await _again(provider, call, exc, tries):
                raise
        except BaseException:
            if chunks is not None:
                await chunks.aclose()
            tried(stats, None)
            raise


async def first_byte(provider: Provider, call: Call, streamed: bool, watcher: Watcher | None,
                 record: RequestRecord | None, tries: Tries | None = None) -> First:
    """One deployment up to its first byte, with its retries: the whole answer, or the stream
    and its first chunk.

    With a ``watcher`` (tracing or debug_bodies on) the call goes through it, so the
    deployment gets one client span (each try an HTTP span under it) and its body log.
    """
    call.stats.started_ns = time.perf_counter_ns()
    if watcher is None or record is None:
        if not streamed:
            return await complete(provider, call, tries), None, b""
        assert not isinstance(call, EmbedCall)  # embeddings are never streamed
        chunks, first = await open_stream(provider, call, tries)
        return b"", chunks, first
    if not streamed:
        return (await watcher.complete(provider, call, record, complete(provider, call, tries)),
                None, b"")
    assert not isinstance(call, EmbedCall)
    watch = watcher.stream(provider, call, record)
    try:
        chunks, first = await open_stream(provider, call, tries)
    except ModelMuxError as exc:
        watch.end(exc.code)
        raise
    except BaseException:
        watch.end("cancelled")
        raise
    if watch.reads or type(chunks) is not RelayedStream:
        return b"", watch.read(chunks, first), first
    chunks.on_end = watch.end  # nothing to read: the stream may splice
    return b"", chunks, first
