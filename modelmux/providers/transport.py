"""One provider's way to its upstream: auth headers, POST with retries, and stream relaying.

``Upstream.post`` retries connect errors, resets before the head, 429, 5xx and 529 with
jittered exponential backoff (honouring ``retry-after``), and refreshes credentials once on a
401. ``Upstream.relay`` drives a sans-I/O ``Relay`` over the body and retries only while nothing
has been yielded to the client. Wire formats are the relays' business, not this module's.
Each call fills in a ``CallStats`` (attempts, retries, errors, time spent waiting, tokens).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Protocol

from modelmux.codec.sse import DONE, encode_data
from modelmux.errors import Headers, ModelMuxError
from modelmux.providers.base import CallStats, ClientSink, Tokens
from modelmux.providers.errors import error_from_response
from modelmux.upstream import (
    ConnectionPool,
    Response,
    Timeouts,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamTimeout,
    UpstreamTLSError,
    backoff_delay,
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
        self._headers = headers

    async def headers(self) -> Headers:
        return self._headers

    def refresh(self, sent: Headers) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait; ``rand`` and ``sleep`` are injectable for tests.

    A ``retry-after`` longer than ``cap`` is not waited for: the error goes to the client with
    that header instead.
    """

    max_retries: int = 2
    base: float = 0.5
    cap: float = 30.0
    rand: Callable[[], float] = random.random
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)


class Attempts:
    """The retry budget of one client request, shared by every stage that may retry."""

    __slots__ = ("auth_refreshed", "policy", "retries", "stats")

    def __init__(self, policy: RetryPolicy, stats: CallStats | None = None) -> None:
        self.policy = policy
        self.retries = 0
        self.auth_refreshed = False
        self.stats = stats if stats is not None else CallStats()

    async def backoff(self, retry_after: float | None) -> bool:
        """Sleep before the next retry and return True, or return False when none is left."""
        policy = self.policy
        if self.retries >= policy.max_retries:
            return False
        if retry_after is not None and retry_after > policy.cap:
            return False
        delay = backoff_delay(self.retries, base=policy.base, cap=policy.cap,
                              retry_after=retry_after, rand=policy.rand)
        self.retries += 1
        await policy.sleep(delay)
        return True


class Relay(Protocol):
    """Sans-I/O stream conversion: upstream body bytes in, SSE-framed client chunks out.

    ``early_error`` is set (and nothing is returned) when the stream failed before producing
    anything, so the caller can still answer with a status or retry; ``finished`` once the
    terminal chunk (``[DONE]`` or an error event) was returned; ``usage`` once the upstream
    reported its token counts.
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


def _retryable_exception(exc: ModelMuxError) -> bool:
    """Errors from ``pool.request`` that mean the request never reached a working upstream."""
    if isinstance(exc, UpstreamTLSError):
        return False
    if isinstance(exc, UpstreamConnectError):
        return exc.code != "upstream_pool_closed"
    if isinstance(exc, UpstreamTimeout):
        return exc.phase == "connect"
    return isinstance(exc, UpstreamClosed)


class Upstream:
    """The pool, auth, timeouts and retry policy of one configured provider."""

    def __init__(
        self,
        provider: str,
        pool: ConnectionPool,
        auth: Auth,
        timeouts: Timeouts,
        retry: RetryPolicy,
        *,
        http2: bool | None = None,
    ) -> None:
        """``http2`` is the provider's HTTP version choice (see ``ConnectionPool.request``)."""
        self.provider = provider
        self.pool = pool
        self.auth = auth
        self.timeouts = timeouts
        self.retry = retry
        self.http2 = http2

    def attempts(self, stats: CallStats | None = None) -> Attempts:
        return Attempts(self.retry, stats)

    async def post(self, url: str, headers: Headers, body: bytes, attempts: Attempts) -> Response:
        """POST until a 2xx head arrives; the caller must close the returned response.

        Raises:
            ModelMuxError: the mapped upstream status (see ``providers.errors``) or transport
                error once retries are spent or the failure is not retryable.
        """
        stats = attempts.stats
        watch = stats.watch  # tracing or debug_bodies; None when both are off
        while True:
            sent = await self.auth.headers()
            stats.attempts += 1
            out = [*headers, *sent]
            if watch is not None:
                resend = attempts.retries + attempts.auth_refreshed
                out += watch.attempt(url, resend, out, body)
            try:
                response = await self.pool.request(b"POST", url, out, body, self.timeouts,
                                                   http2=self.http2)
            except ModelMuxError as exc:
                _failed(stats, exc.code)
                if _retryable_exception(exc) and await self._again(attempts, None, exc.message):
                    continue
                raise
            status = response.status
            if watch is not None:
                watch.attempt_status(status)
            if 200 <= status < 300:
                return response
            try:
                payload = await response.read(MAX_ERROR_BODY)
            except ModelMuxError:
                payload = b""
            finally:
                await response.aclose()
            if status == 401 and not attempts.auth_refreshed and self.auth.refresh(sent):
                stats.errors.append("upstream_auth_failed")
                attempts.auth_refreshed = True
                log.info("provider %s: upstream 401, refreshing credentials once", self.provider)
                continue
            error = error_from_response(self.provider, status, response.headers, payload)
            stats.errors.append(error.code)  # the try's span has its status already
            if is_retryable_status(status):
                value = response.get_header(b"retry-after")
                wait = parse_retry_after(value) if value is not None else None
                if await self._again(attempts, wait, f"HTTP {status}"):
                    continue
            raise error

    async def fetch(
        self, url: str, headers: Headers, body: bytes, stats: CallStats | None = None
    ) -> bytes:
        """The whole 2xx body of a POST; a reset while reading it is retried too.

        Raises:
            ModelMuxError: as ``post``, or the body was cut short after the last retry.
        """
        attempts = self.attempts(stats)
        start = time.perf_counter_ns()
        try:
            while True:
                response = await self.post(url, headers, body, attempts)
                try:
                    async with response:
                        return await response.read()
                except UpstreamClosed as exc:
                    _failed(attempts.stats, exc.code)
                    if not await self._again(attempts, None, exc.message):
                        raise
        finally:
            attempts.stats.wait_ns = attempts.stats.total_ns = time.perf_counter_ns() - start

    async def relay(
        self,
        url: str,
        headers: Headers,
        body: bytes,
        new_relay: Callable[[], Relay],
        stats: CallStats | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """Stream a POST's body through a fresh relay per attempt, yielding client chunks.

        The chunks one upstream read completes are yielded as one piece (SSE events framed
        back to back), so the client gets one write for them rather than one each.

        Before the first chunk is yielded, failures raise (or retry); after it, they end the
        stream with an OpenAI error event. Closing this generator aborts the upstream request.

        A ``Sink`` sent in (``asend``) after a chunk splices the rest: each upstream read (or
        HTTP/2 DATA frame) goes through the relay to the client from the connection's read
        callback, with no task in between, and only what follows the splice (an error event,
        the relay's last words) is still yielded.

        Raises:
            ModelMuxError: only before the first chunk.
        """
        attempts = self.attempts(stats)
        stats = attempts.stats
        start = time.perf_counter_ns()
        waiting = True  # until the first chunk is ready, time passes waiting on the upstream
        relay: Relay | None = None
        sink: ClientSink | None = None
        try:
            while True:
                response = await self.post(url, headers, body, attempts)
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
                        yield encode_data(exc.body())
                        return
                    error = exc
                else:
                    if relay.early_error is None:
                        return
                    error = relay.early_error
                    _failed(stats, error.code)
                if not is_retryable_error(error):
                    raise error
                if not await self._again(attempts, None, error.message):
                    raise error
        finally:
            stats.total_ns = time.perf_counter_ns() - start
            if waiting:
                stats.wait_ns = stats.total_ns
            if relay is not None:
                stats.tokens = relay.usage

    async def _again(self, attempts: Attempts, retry_after: float | None, why: str) -> bool:
        if not await attempts.backoff(retry_after):
            return False
        attempts.stats.retries += 1
        log.info("provider %s: retry %d/%d after %s", self.provider, attempts.retries,
                 attempts.policy.max_retries, why)
        return True


def _failed(stats: CallStats, code: str) -> None:
    """Count one try that failed without an error status, and end its span when tracing
    watches the call."""
    stats.errors.append(code)
    if stats.watch is not None:
        stats.watch.attempt_failed(code)


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
