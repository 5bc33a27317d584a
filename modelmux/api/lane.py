"""The chat lane: a non-streamed chat completion over HTTP/1.1 answered from read callbacks.

When nothing in the pipeline needs an await (no auth, cache, spend, middleware, tracing or
routing rules, ``[streaming] mode`` not ``always``), a ``POST /v1/chat/completions`` that asks
for no stream and names a group of one deployment (no fallback group, no rate limits) on a
provider that needs no await to send (``direct``) is decoded, routed and written to an idle
pooled upstream connection from the client's read callback once its body is in; the answer
is parsed, counted and written to the client from the upstream's: no task, no coroutine.
What it writes, records and counts is what ``api.chat`` does for the same request. A request
it declines goes to the handler untouched; one it cannot finish (a non-2xx answer, a 2xx
error body, a timeout, a cut or odd answer) goes back with nothing written, its upstream
try's outcome primed (``upstream.primed``) for the handler's first try, so the handler goes
on exactly as if it had sent it. ``MODELMUX_LANE=0`` turns the lane off.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import time
from typing import TYPE_CHECKING, Protocol, cast

from modelmux.api.chat import decode_request, observed_headers
from modelmux.api.cors import Cors
from modelmux.api.responses import JSON_HEADERS
from modelmux.api.routes import match
from modelmux.api.services import Services
from modelmux.api.streaming import MODE_HEADER
from modelmux.errors import Headers, ModelMuxError
from modelmux.http1.common import END, NEED_DATA
from modelmux.pipeline.finish import FinishStage
from modelmux.pipeline.route import RouteStage
from modelmux.providers.base import CallStats, note_answer_usage
from modelmux.providers.openai_compatible import upstream_body
from modelmux.providers.transport import Direct
from modelmux.routing.facts import BYTES_PER_TOKEN, DEFAULT_OUTPUT_TOKENS
from modelmux.routing.router import Attempt
from modelmux.routing.store import has_limits
from modelmux.server.exchange import ClientDisconnected
from modelmux.upstream.errors import Phase, UpstreamProtocolError, raise_mapped
from modelmux.upstream.origin import Origin, ResponseHead
from modelmux.upstream.prepare import parse_url, request_headers
from modelmux.upstream.primed import PRIMED, InHand, Primed
from modelmux.upstream.response import DEFAULT_MAX_BYTES, Response

if TYPE_CHECKING:
    from collections.abc import Callable

    from modelmux.observability.record import RequestRecord, Tracer
    from modelmux.providers.base import Provider
    from modelmux.providers.openai_compatible import OpenAICompatibleProvider
    from modelmux.routing.models import DeploymentSpec
    from modelmux.server.exchange import Exchange
    from modelmux.server.lane import LaneHost
    from modelmux.upstream.connection import HTTP11Connection

log = logging.getLogger("modelmux.api")

PATH = "/v1/chat/completions"
_POST = b"POST"
_GET = b"GET"  # request_headers adds no Content-Length for it: the lane adds its own
_OWN = frozenset({b"content-length", b"transfer-encoding"})
_UNSET = object()
_MAX_DIRECT = 1024


class LaneApp(Services, Protocol):
    """The app as the lane sees it."""

    cors: Cors
    tracer: Tracer | None

    def lane_open(self, exchange: Exchange, label: str) -> RequestRecord: ...

    def lane_close(self, exchange: Exchange, *, undo: bool = False) -> None: ...


def lane_allowed(app: LaneApp) -> bool:
    """Whether ``app``'s configuration lets chat requests take the lane at all."""
    if os.environ.get("MODELMUX_LANE", "1") == "0":
        return False
    if (app.tracer is not None or app.watcher is not None or app.cache is not None
            or app.spend is not None or app.auth is not None):
        return False
    if [type(s) for s in app.pipeline.stages] != [RouteStage, FinishStage]:
        return False  # the finish stage runs from the exchange's end, the lane's requests too
    return app.config.streaming.mode != "always" and not app.router.rules


class ChatLane:
    """``server.lane.Lane`` for the OpenAI chat door (built by ``App`` when ``lane_allowed``)."""

    targets = frozenset({PATH.encode()})

    def __init__(self, app: LaneApp) -> None:
        self.app = app
        matched = match(PATH)
        assert matched is not None
        self.label = matched[0]
        self._direct: dict[str, tuple[Direct, Headers] | None] = {}  # per deployment id

    def take(self, exchange: Exchange, host: LaneHost) -> _Held | None:
        """The request in flight upstream, or None (nothing changed) to leave it to the
        handler."""
        body = exchange.body
        if body is None:
            return None
        # A stream request goes to the handler before a decode it would pay twice; bytes
        # like these inside a string only send a request there needlessly.
        at = body.find(b'"stream"')
        if at >= 0 and body[at + 8:at + 24].lstrip(b" \t\r\n:").startswith(b"true"):
            return None
        app = self.app
        if exchange.method != "POST" or exchange.header(MODE_HEADER) is not None:
            return None
        if exchange.header(b"origin") is not None and app.cors.enabled:
            return None
        try:
            request = decode_request(body)
            group = app.models.group(request.model)
        except ModelMuxError:
            return None  # the handler answers with the error
        if request.stream or len(group.deployments) != 1 or group.fallback_group:
            return None
        spec = group.deployments[0]
        known = self._direct.get(spec.id, _UNSET)
        if known is _UNSET:
            if len(self._direct) >= _MAX_DIRECT:  # clients may name any provider/model
                self._direct.clear()
            known = self._direct[spec.id] = _direct_of(spec)
        if not isinstance(known, tuple):
            return None
        direct, head = known
        # Estimate(...).prompt_tokens + .output_tokens, written out: no frozen dataclass
        tokens = len(body) // BYTES_PER_TOKEN or 1
        most = request.max_completion_tokens or request.max_tokens
        tokens += DEFAULT_OUTPUT_TOKENS if most is None else most
        router = app.router
        attempt = router.admit(spec, tokens)
        if attempt is None:
            return None
        started = time.perf_counter_ns()
        upstream = direct.upstream
        lent = upstream.pool.lend_idle(direct.url, upstream.http2)
        if lent is None:
            router.released(attempt)
            return None
        conn, release, _, target = lent
        sent = upstream_body(body, sent_model=request.model, sent_stream=False,
                             model=spec.model, stream=False)
        held = _Held(self, exchange, host, direct, conn, release, attempt, started,
                     request.model, sent)
        first = upstream.timeouts.first_byte
        if not conn.send_watched(_POST, target, [*head, (b"content-length", b"%d" % len(sent))],
                                 sent, held.on_wake, held.on_timeout,
                                 None if first is None else asyncio.get_running_loop().time()
                                 + first):
            conn.abort()
            release()
            router.released(attempt)
            return None
        record = held.record = app.lane_open(exchange, self.label)
        provider = cast("Provider", spec.provider)
        record.model, record.mode = request.model, "never"
        record.provider, record.provider_type = provider.name, provider.type
        record.upstream_model = spec.model
        return held


def _direct_of(spec: DeploymentSpec) -> tuple[Direct, Headers] | None:
    """How the lane sends to ``spec`` and the request head less its Content-Length
    (``request_headers``'), or None when it cannot: a provider that needs an await to send
    (``direct``), a framing header the provider sets itself, or rate limits.

    Raises:
        ValueError: the provider's URL is not an absolute http(s) URL.
    """
    maker = getattr(spec.provider, "direct", None)
    direct = maker(spec.model) if maker is not None and not has_limits(spec) else None
    if direct is None or any(name.lower() in _OWN for name, _ in direct.headers):
        return None
    origin, _ = parse_url(direct.url)
    return direct, request_headers(_GET, direct.headers, origin, b"")


class _Held:
    """One request the lane holds: sent upstream, its answer gathered from read callbacks."""

    __slots__ = ("attempt", "conn", "direct", "exchange", "head", "host", "lane", "parts",
                 "public_model", "read", "record", "release", "sent", "stats")

    def __init__(self, lane: ChatLane, exchange: Exchange, host: LaneHost, direct: Direct,
                 conn: HTTP11Connection, release: Callable[[], None], attempt: Attempt,
                 started: int, public_model: str, sent: bytes) -> None:
        self.lane, self.exchange, self.host = lane, exchange, host
        self.direct, self.conn, self.release, self.attempt = direct, conn, release, attempt
        self.public_model, self.sent = public_model, sent
        stats = self.stats = CallStats()
        stats.started_ns, stats.attempts = started, 1
        self.head: tuple[int, Headers, bytes] | None = None
        self.parts: list[bytes] = []
        self.read = direct.upstream.timeouts.read
        self.record: RequestRecord | None = None  # set once the request went upstream

    def on_wake(self) -> None:
        """Data, an EOF or a close on the upstream connection: parse what arrived."""
        conn, parts = self.conn, self.parts
        try:
            event = conn.read_ready(parts)
            if self.head is None and type(event) is tuple:
                if not 200 <= event[0] < 300:  # the handler reads it, as it would have
                    self._back(response=self._hand_over(event))
                    return
                self.head = event
                event = conn.read_ready(parts)
            if event is END and self.head is not None:
                pass  # answered below, outside this try: nothing it raises is the upstream's
            elif event is not NEED_DATA:
                raise UpstreamProtocolError(f"{conn.origin}: unexpected {event!r}")
            elif sum(map(len, parts)) > DEFAULT_MAX_BYTES:
                self._back(error=_too_large(conn.origin))
                return
            elif self.head is not None and self.read is not None:
                conn.expire_at(asyncio.get_running_loop().time() + self.read)
        except Exception as exc:  # noqa: BLE001  # the handler meets it as it would have
            self._back(error=_mapped(exc, "read" if self.head else "first_byte", conn.origin))
            return
        if event is END:
            self._answered()

    def on_timeout(self) -> None:
        self._back(error=_mapped(TimeoutError(), "read" if self.head else "first_byte",
                                 self.conn.origin))

    def _hand_over(self, head: tuple[int, Headers, bytes]) -> Response:
        """The connection, its answer's head read, as the response the handler would get."""
        conn, upstream = self.conn, self.direct.upstream
        conn.unwatch()
        release, self.release = self.release, _nothing
        return Response(conn, ResponseHead(head[0], head[1], head[2].decode("latin-1")),
                        upstream.timeouts.read, release, upstream.pool.budget)

    def _answered(self) -> None:
        """The whole 2xx answer is in: pool the connection, answer the client."""
        conn, stats, direct = self.conn, self.stats, self.direct
        conn.finish_watch()
        self.release()
        self.release = _nothing
        stats.wait_ns = stats.total_ns = time.perf_counter_ns() - stats.started_ns
        head = self.head
        assert head is not None
        provider: OpenAICompatibleProvider = self.attempt.spec.provider  # type: ignore[assignment]
        if direct.upstream.keep_prefix is not None:
            stats.headers = direct.upstream.kept(head[1])
        parts = self.parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        if len(body) > DEFAULT_MAX_BYTES:
            self._back(error=_too_large(conn.origin))
            return
        try:
            answer = provider.answer_of(body, self.public_model, stats)
        except ModelMuxError:  # the handler meets it as it would have, from the same bytes
            self._back(response=Response(InHand(conn.origin, body), ResponseHead(
                head[0], head[1], head[2].decode("latin-1")), None))
            return
        lane, exchange, record = self.lane, self.exchange, self.record
        assert record is not None
        app = lane.app
        router = app.router
        router.succeeded(self.attempt, complete=True)
        record.stats = stats
        try:
            if stats.tokens is None:
                note_answer_usage(stats, answer)
            exchange.reply(200, [*JSON_HEADERS,
                                 *observed_headers(record, exchange, provider, stats)], answer)
        except ClientDisconnected:
            pass
        except Exception:
            log.exception("chat lane failed answering %s", record.request_id)
        tokens = stats.tokens
        app.dispatcher.settle(self.attempt, sum(tokens) if tokens else None)
        app.lane_close(exchange)
        self.host.lane_finished()

    def _drop(self) -> None:
        """Close the upstream connection unless it was handed on or went back to the pool."""
        if self.release is not _nothing:
            conn = self.conn
            conn.unwatch()
            conn.abort()
            self.release()
            self.release = _nothing

    def _back(self, *, response: Response | None = None, error: Exception | None = None
              ) -> None:
        """Give the request back to the handler with nothing written, the lane's work undone
        but for its upstream try, whose outcome (``response`` or ``error``) the handler's
        own first try takes (``upstream.primed``) instead of sending again."""
        self._drop()
        app = self.lane.app
        app.router.released(self.attempt)
        app.lane_close(self.exchange, undo=True)
        context = contextvars.copy_context()
        context.run(PRIMED.set, Primed(self.direct.url, self.sent, response=response,
                                       error=error))
        log.debug("chat lane: %s goes to the handler (%s)", self.exchange.path,
                  error or f"upstream status {response and response.status}")
        task = self.host.lane_fallback(context)
        if response is not None:
            if task is None:
                response.abort()
            else:  # a handler that never asked for it (say, its circuit opened): close it
                task.add_done_callback(functools.partial(_unclaimed, context))

    def cancel(self) -> None:
        """The client went away: close the upstream connection (as a cancelled call does)."""
        self._drop()
        app = self.lane.app
        app.router.released(self.attempt)
        app.lane_close(self.exchange)


def _unclaimed(context: contextvars.Context, _: object) -> None:
    """The handler's task is over: close a primed response it did not take."""
    primed = context.get(PRIMED)
    if primed is not None and not primed.taken and primed.response is not None:
        primed.response.abort()


def _mapped(exc: Exception, phase: Phase, origin: Origin) -> Exception:
    """The upstream error a coroutine reading the answer would have met for ``exc``."""
    try:
        raise_mapped(exc, phase, origin)
    except Exception as mapped:  # noqa: BLE001  # what it maps to, whatever it is
        return mapped
    return exc


def _too_large(origin: Origin) -> UpstreamProtocolError:
    """``Response.read``'s error for an answer over its limit."""
    return UpstreamProtocolError(
        f"{origin}: response body exceeds the limit of {DEFAULT_MAX_BYTES} bytes",
        code="upstream_response_too_large")


def _nothing() -> None:
    """Nothing to give back any more."""
