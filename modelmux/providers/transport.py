"""One provider's way to its upstream: auth headers, one POST, and its streams to relay.

Each method makes one try (re-sent once after a 401 when the credentials refresh). A failure
another try may cure (connect errors, resets before the head, 429, 5xx, 529) is raised with
``retryable`` set and the upstream's ``retry_after``; the call stage decides whether and when
to try again. ``ProviderClient.stream`` builds an ``UpstreamStream``, the request and the relay
factory of one stream, which the call stage opens and relays (``pipeline.stream``). Wire
formats are the relays' business, not this module's. Each try reports what happened on the
call's ``CallStats`` (requests sent, the answer's status, time waiting): the call stage counts
the try and records its outcome from them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

import msgspec

from modelmux.errors import Headers, ModelMuxError
from modelmux.providers.base import CallStats, RetryPolicy
from modelmux.providers.errors import error_from_response
from modelmux.providers.relay import Relay
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

log = logging.getLogger("modelmux.providers")


MAX_ERROR_BODY = 256 * 1024


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
            stats.sent += 1
            out = [*headers, *sent]
            if watch is not None:
                out += watch.sending(url, out, body)
            try:
                response = await self.pool.request(b"POST", url, out, body, self.timeouts,
                                                   http2=self.http2)
            except ModelMuxError as exc:
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
                stats.resent = [*(stats.resent or ()), "upstream_auth_failed"]
                refreshed = True
                log.info("provider %s: upstream 401, refreshing credentials once", self.provider)
                continue
            error = self.errors(self.provider, status, response.headers, payload)
            error.headers = [*error.headers, *kept]
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
                exc.retryable = True
                raise
        finally:
            stats.wait_ns = stats.total_ns = time.perf_counter_ns() - start

    def stream(self, url: str, headers: Headers, body: bytes, new_relay: Callable[[], Relay],
               stats: CallStats, sign: Sign | None = None) -> UpstreamStream:
        """The stream of one POST of ``body`` to ``url``, read through ``new_relay``'s relay;
        ``sign`` adds the request's signature when it is opened. Nothing is sent here."""
        return UpstreamStream(self, url, headers, body, new_relay, stats, sign)


Sign = Callable[[str, Headers, bytes], Awaitable[Headers]]
"""(url, headers, body) → the headers with the request's signature (SigV4), made when sent."""


class UpstreamStream(msgspec.Struct):
    """One try's stream as its provider describes it (a ``Spliceable``): the request its
    endpoint profile builds and the relay factory of its stream format (a Struct: built in
    C, once a stream)."""

    upstream: ProviderClient
    url: str
    headers: Headers
    body: bytes
    new_relay: Callable[[], Relay]
    stats: CallStats
    sign: Sign | None = None

    @property
    def provider(self) -> str:
        return self.upstream.provider

    def open(self) -> Awaitable[Response]:
        """POST once, as ``ProviderClient.post``; the caller must close the response. Unsigned,
        this is ``post`` itself: no frame between.

        Raises:
            ModelMuxError: as ``ProviderClient.post``, or the signature cannot be made.
        """
        if self.sign is None:
            return self.upstream.post(self.url, self.headers, self.body, self.stats)
        return self._signed()

    async def _signed(self) -> Response:
        assert self.sign is not None
        headers = await self.sign(self.url, self.headers, self.body)
        return await self.upstream.post(self.url, headers, self.body, self.stats)
