"""One provider's way to its upstream: auth headers, one POST, and stream relaying.

Each method makes one try (re-sent once after a 401 when the credentials refresh). A failure
another try may cure (connect errors, resets before the head, 429, 5xx, 529, a stream that
failed before its first chunk) is raised with ``retryable`` set and the upstream's
``retry_after``; the call stage decides whether and when to try again. ``ProviderClient.relay``
drives a sans-I/O ``Relay`` over the body. Wire formats are the relays' business, not this
module's. Each try fills in the call's ``CallStats`` (attempts, errors, status, time waiting,
tokens): the call stage reads them to record the try's outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import suppress
from typing import NamedTuple, Protocol

from modelmux.codec.sse import DONE, encode_data
from modelmux.errors import Headers, ModelMuxError
from modelmux.providers.base import CallStats, ClientSink, RetryPolicy, Tokens
from modelmux.providers.errors import error_from_response
from modelmux.upstream import (
    ConnectionPool,
    Response,
    Timeouts,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamTimeout,
    UpstreamTLSError,
    is_retryable_status,
    parse_retry_after,
)
from modelmux.upstream.retry import is_retryable_error

log = logging.getLogger("modelmux.providers")


MAX_ERROR_BODY = 256 * 1024
_DRAIN_BYTES = 64 * 1024
_DRAIN_SECONDS = 1.0


class Auth(Protocol):
    """Where a provider's credentials come from."""

    async def headers(self) -> Headers:
        """The auth headers for the next request.

        Raises:
            ModelMuxError: credentials cannot be obtained (e.g. the token endpoint failed).
        """

    def refresh(self, sent: Headers) -> bool:
        """After a 401 to ``sent``: drop cached credentials; True if another try may work."""


class StaticAuth:
    """Fixed headers (an API key); a 401 is final."""

    def __init__(self, headers: Headers) -> None:
        self._headers = self.fixed = headers

    async def headers(self) -> Headers:
        return self._headers

    def refresh(self, sent: Headers) -> bool:
        return False


ErrorMapper = Callable[[str, int, Headers, bytes], ModelMuxError]
"""(provider, status, answer headers, body) → the client's error: ``error_from_response``, or
a provider's own reading of its error bodies."""


class Relay(Protocol):
    """Sans-I/O stream conversion: upstream body bytes in, SSE-framed client chunks out.

    ``early_error`` is set (and nothing is returned) when the stream failed before producing
    anything, so the caller can still answer with a status or retry; ``finished`` once the
    terminal chunk (``[DONE]`` or an error event) was returned; ``usage`` once the upstream
    reported its token counts. A relay whose clients speak another format than OpenAI's may
    have ``error_frame(error) -> bytes``: the frame that ends its stream after a failure.
    """

    early_error: ModelMuxError | None

    @property
    def started(self) -> bool: ...

    @property
    def finished(self) -> bool: ...

    @property
    def usage(self) -> Tokens | None: ...

    def feed(self, data: bytes) -> list[bytes]: ...

    def close(self) -> list[bytes]: ...


class Direct(NamedTuple):
    """One try's request, known without awaiting: for a caller that sends from a callback.
    ``headers`` carry the credentials; ``upstream`` gives the pool, timeouts and the answer
    headers to keep."""

    url: str
    headers: Headers
    upstream: ProviderClient


def _retryable_exception(exc: ModelMuxError) -> bool:
    """Errors from ``pool.request`` that mean the request never reached a working upstream."""
    if isinstance(exc, UpstreamTLSError):
        return False
    if isinstance(exc, UpstreamConnectError):
        return exc.code != "upstream_pool_closed"
    if isinstance(exc, UpstreamTimeout):
        return exc.phase == "connect"
    return isinstance(exc, UpstreamClosed)


class ProviderClient:
    """The pool, auth and timeouts of one configured provider; ``retry`` is its declared
    policy, which the call stage applies."""

    def __init__(
        self,
        provider: str,
        pool: ConnectionPool,
        auth: Auth,
        timeouts: Timeouts,
        retry: RetryPolicy,
        *,
        http2: bool | None = None,
        errors: ErrorMapper = error_from_response,
        keep_prefix: bytes | None = None,
    ) -> None:
        """``http2`` is the provider's HTTP version choice (see ``ConnectionPool.request``);
        ``errors`` turns a non-2xx answer into the client's error; answer headers whose name
        starts with ``keep_prefix`` go on to the client (``CallStats.headers``, or the
        error's headers)."""
        self.provider = provider
        self.pool = pool
        self.auth = auth
        self.timeouts = timeouts
        self.retry = retry
        self.http2 = http2
        self.errors = errors
        self.keep_prefix = keep_prefix

    async def post(self, url: str, headers: Headers, body: bytes, stats: CallStats) -> Response:
        """POST once (again after a 401 if the credentials refresh) until a 2xx head arrives;
        the caller must close the returned response.

        Raises:
            ModelMuxError: the mapped upstream status (see ``providers.errors``) or transport
                error, with ``retryable`` and ``retry_after`` set for the call stage.
        """
        watch = stats.watch  # tracing or debug_bodies; None when both are off
        refreshed = False
        while True:
            sent = await self.auth.headers()
            stats.attempts += 1
            out = [*headers, *sent]
            if watch is not None:
                out += watch.sending(url, out, body)
            try:
                response = await self.pool.request(b"POST", url, out, body, self.timeouts,
                                                   http2=self.http2)
            except ModelMuxError as exc:
                _failed(stats, exc.code)
                exc.retryable = _retryable_exception(exc)
                raise
            status = stats.status = response.status
            kept = [] if self.keep_prefix is None else self._kept(response.headers)
            if 200 <= status < 300:
                stats.headers = kept
                return response
            try:
                payload = await response.read(MAX_ERROR_BODY)
            except ModelMuxError:
                payload = b""
            finally:
                await response.aclose()
            if status == 401 and not refreshed and self.auth.refresh(sent):
                stats.errors.append("upstream_auth_failed")
                refreshed = True
                log.info("provider %s: upstream 401, refreshing credentials once", self.provider)
                continue
            error = self.errors(self.provider, status, response.headers, payload)
            error.headers = [*error.headers, *kept]
            stats.errors.append(error.code)
            if is_retryable_status(status):
                error.retryable = True
                value = response.get_header(b"retry-after")
                if value is not None:
                    error.retry_after = parse_retry_after(value)
            raise error

    def direct(self, url: str, headers: Headers) -> Direct | None:
        """``Direct`` for a POST of ``headers`` to ``url`` when the credentials are fixed and
        HTTP/2 is not asked for, else None."""
        if type(self.auth) is not StaticAuth or self.http2:
            return None
        return Direct(url, [*headers, *self.auth.fixed], self)

    def kept(self, headers: Headers) -> Headers:
        """The answer headers the client gets too (``keep_prefix``)."""
        return [] if self.keep_prefix is None else self._kept(headers)

    def _kept(self, headers: Headers) -> Headers:
        prefix = self.keep_prefix
        if prefix is None:
            return []
        return [(name, value) for name, value in headers if name.startswith(prefix)]

    async def fetch(self, url: str, headers: Headers, body: bytes, stats: CallStats) -> bytes:
        """The whole 2xx body of one POST; a reset while reading it is retryable too.

        Raises:
            ModelMuxError: as ``post``, or the body was cut short.
        """
        start = stats.started_ns or time.perf_counter_ns()
        try:
            response = await self.post(url, headers, body, stats)
            try:
                return await response.read()  # it gives the connection back, however it ends
            except UpstreamClosed as exc:
                _failed(stats, exc.code)
                exc.retryable = True
                raise
        finally:
            stats.wait_ns = stats.total_ns = time.perf_counter_ns() - start

    async def relay(
        self,
        url: str,
        headers: Headers,
        body: bytes,
        new_relay: Callable[[], Relay],
        stats: CallStats,
    ) -> AsyncGenerator[bytes, None]:
        """Stream one POST's body through a fresh relay, yielding client chunks.

        The chunks one upstream read completes are yielded as one piece (SSE events framed
        back to back), so the client gets one write for them rather than one each.

        Before the first chunk is yielded, failures raise (``retryable`` when another try may
        cure them); after it, they end the stream with an OpenAI error event. Closing this
        generator aborts the upstream request.

        A ``Sink`` sent in (``asend``) after a chunk splices the rest: each upstream read (or
        HTTP/2 DATA frame) goes through the relay to the client from the connection's read
        callback, with no task in between, and only what follows the splice (an error event,
        the relay's last words) is still yielded.

        Raises:
            ModelMuxError: only before the first chunk.
        """
        start = stats.started_ns or time.perf_counter_ns()
        waiting = True  # until the first chunk is ready, time passes waiting on the upstream
        relay: Relay | None = None
        sink: ClientSink | None = None
        try:
            response = await self.post(url, headers, body, stats)
            relay = new_relay()
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
                            sent = yield out[0] if len(out) == 1 else b"".join(out)
                            if sent is not None:
                                sink = sent
                        if sink is not None and not relay.finished:
                            out = await _splice(response, relay, sink)
                        if relay.finished:
                            if out and out[-1] == DONE:  # a clean end: keep the connection
                                await _drain(response)
                            break
                    else:
                        out = relay.close()
                        if out:
                            yield b"".join(out)
            except ModelMuxError as exc:
                _failed(stats, exc.code)
                if relay.started:
                    log.warning("provider %s: stream failed mid-way: %s", self.provider,
                                exc.message)
                    frame = getattr(relay, "error_frame", None)  # a relay in another format
                    yield frame(exc) if frame is not None else encode_data(exc.body())
                    return
                exc.retryable = is_retryable_error(exc)
                raise
            error = relay.early_error
            if error is not None:
                _failed(stats, error.code)
                error.retryable = is_retryable_error(error)
                raise error
        finally:
            stats.total_ns = time.perf_counter_ns() - start
            if waiting:
                stats.wait_ns = stats.total_ns
            if relay is not None:
                stats.tokens = relay.usage
                stats.cache = getattr(relay, "cache", None)


def _failed(stats: CallStats, code: str) -> None:
    """Count one try that failed without an error status (the call stage records it)."""
    stats.errors.append(code)


async def _splice(response: Response, relay: Relay, sink: ClientSink) -> list[bytes]:
    """Relay the rest of the body to ``sink`` from the upstream's read callback, until the relay
    finishes or the body ends; wait for the client whenever it falls behind. Returns the relay's
    last output (whether it ended with ``[DONE]``).

    Raises:
        ModelMuxError: the upstream failed (see ``Response.splice``).
        ClientDisconnected: the client went away.
    """
    last: list[bytes] = []

    def on_body(data: bytes) -> bool:
        nonlocal last
        out = relay.feed(data)
        if out:
            last = out
            if not sink.push(out[0] if len(out) == 1 else b"".join(out)):
                return False
        return not relay.finished  # started, so a failure is an error event, not early_error

    while True:
        ended = await response.splice(on_body)
        if ended or relay.finished:
            return last
        await sink.drain()  # the client fell behind (or left: this raises)


async def _drain(response: Response) -> None:
    """Read the little that follows the terminal event so the connection can be pooled."""
    with suppress(ModelMuxError, TimeoutError):
        async with asyncio.timeout(_DRAIN_SECONDS):
            await response.read(_DRAIN_BYTES)
