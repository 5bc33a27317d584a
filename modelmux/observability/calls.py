"""Watching provider calls for tracing and ``debug_bodies``; built only when one of them is on.

``Watcher`` wraps the call stage's tries of a provider's ``complete``/``stream`` (or ``embed``,
``complete_text``, ``stream_text``) for one call: it opens the GenAI span,
hangs a ``CallWatch`` on the call's stats (the call stage opens one span per upstream try and
records its outcome; the transport logs the body it sends and adds the ``traceparent``), reads
the response attributes and logs the answer. When both are off the App has no watcher and the chat route calls the provider itself.
A span the sampler dropped gets no attributes worked out and no stream scanned: only its
``traceparent`` (sampled flag off) goes upstream.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol

import msgspec

from modelmux.errors import Headers, ModelMuxError
from modelmux.observability.bodies import BodyLog, StreamBodies
from modelmux.observability.genai import (
    EMBEDDINGS,
    OPERATION,
    TEXT_COMPLETION,
    Attributes,
    StreamReader,
    operation_attributes,
    read_answer,
    request_attributes,
    usage_attributes,
)
from modelmux.providers.base import Call, ChatCall, EmbedCall, Provider

if TYPE_CHECKING:
    from modelmux.observability.record import CallSpan, RequestRecord, Tracer



class _Error(msgspec.Struct):
    code: str | None = None


class _ErrorEvent(msgspec.Struct):
    error: _Error


_error_event = msgspec.json.Decoder(_ErrorEvent)


def stream_error(piece: bytes) -> str | None:
    """The ``code`` of an OpenAI error event (how a stream that failed mid-way ends), or None.

    ``piece`` holds one or more SSE events; an error event is the last one a stream sends.
    """
    at = piece.rfind(b'data: {"error"')
    if at < 0 or (at and piece[at - 1] != 0x0A):
        return None
    end = piece.find(b"\n\n", at)
    try:
        payload = piece[at + 6:end if end >= 0 else len(piece)]
        return _error_event.decode(payload.strip()).error.code or "error"
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


class CallWatch:
    """One call's upstream tries (``CallStats.watch``): the call stage starts each and records
    its outcome; the transport reports what it sends."""

    __slots__ = ("bodies", "request_id", "resend", "sent", "span", "trace")

    def __init__(self, span: CallSpan | None, bodies: BodyLog | None, request_id: str) -> None:
        self.span = span
        self.bodies = bodies
        self.request_id = request_id
        self.resend = 0  # tries before the current one
        self.sent = False  # the current try has sent a request: it has a span
        self.trace: Headers = []  # the current try's trace headers

    def attempt(self, resend: int) -> None:
        """The call stage starts a try (``resend`` tries came before it)."""
        self.resend, self.sent = resend, False

    def sending(self, url: str, headers: Headers, body: bytes) -> Headers:
        """The transport is about to send the current try (again, after a 401 whose
        credentials refreshed, or its next batch); returns the trace headers to add to it.
        The try's span starts with its first request, so a try that sends nothing (``mock``)
        has none."""
        if self.bodies is not None:
            self.bodies.upstream(self.request_id, url, headers, body)
        if self.span is None:
            return []
        if not self.sent:
            self.sent = True
            self.trace = self.span.attempt(url, self.resend)
        return self.trace

    def attempt_done(self, status: int, error: str | None) -> None:
        """The call stage records the try's outcome: the upstream ``status`` of its answer
        head (0: none), and ``error``, the code it failed with (None: it answered). A try
        that failed without an error status ends its span here."""
        span = self.span
        if span is None or not self.sent:
            return
        if status:
            span.attempt_status(status)
        if error is not None and status < 400:
            span.attempt_failed(error)


class Watcher:
    """Tracing and body logging around provider calls."""

    def __init__(self, tracer: Tracer | None, bodies: BodyLog | None) -> None:
        self.tracer = tracer
        self.bodies = bodies

    def request_body(self, request_id: str, body: bytes) -> None:
        if self.bodies is not None:
            self.bodies.request(request_id, body)

    def _watch(self, provider: Provider, call: Call, record: RequestRecord) -> CallWatch:
        span = None
        if self.tracer is not None:
            operation = (OPERATION if isinstance(call, ChatCall)
                         else EMBEDDINGS if isinstance(call, EmbedCall) else TEXT_COMPLETION)
            span = self.tracer.call_span(record.span, f"{operation} {call.model}")
            if span.recording:
                attributes = (request_attributes(call.request, provider.type, call.model)
                              if isinstance(call, ChatCall)
                              else operation_attributes(operation, provider.type, call.model))
                attributes["modelmux.provider"] = provider.name
                span.set(attributes)
        watch = call.stats.watch = CallWatch(span, self.bodies, call.request_id)
        return watch

    def _done(self, call: Call, watch: CallWatch, error: str | None,
              attributes: Attributes | None, answer: bytes | StreamBodies | None) -> None:
        """The call is over: end its span (with ``attributes``), log ``answer``."""
        if watch.span is not None:
            if attributes is not None:
                watch.span.set(attributes)
            watch.span.end(error)
        call.stats.watch = None
        if answer is not None and self.bodies is not None:
            self.bodies.response(call.request_id, answer)

    async def complete(self, provider: Provider, call: Call, record: RequestRecord,
                       answer_of: Awaitable[bytes]) -> bytes:
        """``answer_of`` (the call stage's tries at ``provider``), traced and logged; a traced
        answer's usage goes on ``call.stats.tokens``, so the answer is decoded once."""
        watch = self._watch(provider, call, record)
        answer = b""
        error: str | None = "cancelled"
        try:
            answer = await answer_of
            error = None
        except ModelMuxError as exc:
            error = exc.code
            raise
        finally:
            attributes = None
            if error is None and watch.span is not None and watch.span.recording:
                attributes, call.stats.tokens = read_answer(answer)
                attributes.update(usage_attributes(call.stats.tokens))
            self._done(call, watch, error, attributes, answer if error is None else None)
        return answer

    def stream(self, provider: Provider, call: Call, record: RequestRecord) -> StreamWatch:
        """Watch the stream of ``call`` (the call stage's tries at ``provider``, then the
        served stream): its span opens now."""
        watch = self._watch(provider, call, record)
        traced = watch.span is not None and watch.span.recording
        return StreamWatch(self, call, watch, StreamReader() if traced else None,
                           StreamBodies() if self.bodies is not None else None)


class _Stream(Protocol):
    def __anext__(self) -> Awaitable[bytes]: ...
    def aclose(self) -> Awaitable[None]: ...


class StreamWatch:
    """One watched stream. A recorded span reads every piece (usage, finish reason, error
    events) and a body log keeps them (``reads``: then the pieces go through ``read``); with
    neither, nothing is read and the stream may splice. ``end`` closes the span."""

    __slots__ = ("_call", "_kept", "_reader", "_watch", "_watcher", "seen")

    def __init__(self, watcher: Watcher, call: Call, watch: CallWatch,
                 reader: StreamReader | None, kept: StreamBodies | None) -> None:
        self._watcher, self._call, self._watch = watcher, call, watch
        self._reader, self._kept = reader, kept
        self.seen: str | None = None  # the code of an error event read

    @property
    def reads(self) -> bool:
        return self._reader is not None or self._kept is not None

    def feed(self, piece: bytes) -> None:
        """A piece on its way to the client."""
        if self._reader is not None:
            self._reader.feed(piece)
            code = stream_error(piece)
            if code is not None:
                self.seen = code
        if self._kept is not None:
            self._kept.feed(piece)

    def read(self, chunks: _Stream, first: bytes) -> WatchedPieces:
        """``chunks``, whose ``first`` piece was served, with every piece read on its way."""
        self.feed(first)
        return WatchedPieces(self, chunks)

    def end(self, error: str | None) -> None:
        """The stream is over (``error``: how it failed, ``"cancelled"`` when cut short)."""
        call = self._call
        attributes = None
        if self._reader is not None:
            attributes = {**self._reader.attributes, **usage_attributes(call.stats.tokens)}
        self._watcher._done(call, self._watch, error, attributes, self._kept)


class WatchedPieces:
    """A stream read piece by piece for its ``StreamWatch``; closing it closes the stream."""

    __slots__ = ("_chunks", "_watch")

    def __init__(self, watch: StreamWatch, chunks: _Stream) -> None:
        self._watch: StreamWatch | None = watch
        self._chunks = chunks

    def __aiter__(self) -> WatchedPieces:
        return self

    async def __anext__(self) -> bytes:
        watch = self._watch
        if watch is None:
            raise StopAsyncIteration
        try:
            piece = await self._chunks.__anext__()
        except StopAsyncIteration:
            await self._end(watch.seen)
            raise
        except ModelMuxError as exc:
            await self._end(exc.code)
            raise
        except BaseException:
            await self._end(watch.seen or "cancelled")
            raise
        watch.feed(piece)
        return piece

    async def aclose(self) -> None:
        watch = self._watch
        if watch is not None:
            await self._end(watch.seen or "cancelled")

    async def _end(self, error: str | None) -> None:
        watch, self._watch = self._watch, None
        assert watch is not None
        try:
            await self._chunks.aclose()
        finally:
            watch.end(error)
