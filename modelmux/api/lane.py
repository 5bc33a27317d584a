"""The chat lane: a non-streamed chat completion over HTTP/1.1 answered from read callbacks.

When nothing in the pipeline needs an await (no auth, cache, spend, middleware or tracing,
``[streaming] mode`` not ``always``), a ``POST /v1/chat/completions`` whose body came with its
head, asks for no stream, and names a group of one deployment (no routing rules, no fallback
group, no rate limits) on a provider that needs no await to send (``Provider.direct``) is
decoded, routed and written to an idle pooled upstream connection from the client's read
callback; the answer is parsed, counted and written to the client from the upstream's: no
task, no coroutine. What it writes, records and counts is what ``api.chat`` does for the same
request. Anything it does not handle before the first byte reaches the client (no idle
connection, a non-2xx answer, a timeout, a cut or odd body) gives the request back to the
handler, which then does everything as without the lane: the upstream sees that request
twice. ``MODELMUX_LANE=0`` turns the lane off.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Protocol

from modelmux.api.chat import decode_request, observed_headers
from modelmux.api.cors import Cors
from modelmux.api.responses import JSON_HEADERS
from modelmux.api.routes import match
from modelmux.api.services import Services
from modelmux.api.streaming import MODE_HEADER
from modelmux.errors import ModelMuxError
from modelmux.http1.common import END, NEED_DATA
from modelmux.pipeline.route import RouteStage
from modelmux.providers.base import CallStats, note_answer_usage
from modelmux.providers.openai_compatible import upstream_body
from modelmux.providers.transport import Direct
from modelmux.routing.facts import estimate_prompt_tokens, max_tokens_of
from modelmux.routing.router import Attempt, Estimate
from modelmux.routing.store import has_limits
from modelmux.server.exchange import ClientDisconnected
from modelmux.upstream.pool import DEFAULT_MAX_BYTES, request_headers

if TYPE_CHECKING:
    from collections.abc import Callable

    from modelmux.observability.record import RequestRecord
    from modelmux.providers.openai_compatible import OpenAICompatibleProvider
    from modelmux.server.exchange import Exchange
    from modelmux.server.lane import LaneHost
    from modelmux.upstream.connection import HTTP11Connection

log = logging.getLogger("modelmux.api")

PATH = "/v1/chat/completions"
_POST = b"POST"
_UNSET = object()


class LaneApp(Services, Protocol):
    """The app as the lane sees it."""

    cors: Cors
    tracer: object | None

    def lane_open(self, exchange: Exchange, label: str) -> RequestRecord: ...

    def lane_close(self, exchange: Exchange, *, undo: bool = False) -> None: ...


def lane_allowed(app: LaneApp) -> bool:
    """Whether ``app``'s configuration lets chat requests take the lane at all."""
    if os.environ.get("MODELMUX_LANE", "1") == "0":
        return False
    if (app.tracer is not None or app.watcher is not None or app.cache is not None
            or app.spend is not None or app.auth is not None):
        return False
    stages = app.pipeline.stages
    if len(stages) != 1 or type(stages[0]) is not RouteStage:
        return False
    return app.config.streaming.mode != "always" and not app.router.rules


class ChatLane:
    """``server.lane.Lane`` for the OpenAI chat door (built by ``App`` when ``lane_allowed``)."""

    targets = frozenset({PATH.encode()})

    def __init__(self, app: LaneApp) -> None:
        self.app = app
        matched = match(PATH)
        assert matched is not None
        self.label = matched[0]
        self._direct: dict[str, Direct | None] = {}  # per deployment id, worked out once

    def take(self, exchange: Exchange, host: LaneHost) -> _Held | None:
        """The request in flight upstream, or None (nothing changed) to leave it to the
        handler."""
        app = self.app
        if exchange.method != "POST" or exchange.header(MODE_HEADER) is not None:
            return None
        if app.cors.enabled and exchange.header(b"origin") is not None:
            return None
        body = exchange.body_now()
        if body is None:
            return None
        try:
            request = decode_request(body)
            group = app.models.group(request.model)
        except ModelMuxError:
            return None  # the handler answers with the error
        if request.stream or len(group.deployments) != 1 or group.fallback_group:
            return None
        spec = group.deployments[0]
        direct = self._direct.get(spec.id, _UNSET)
        if direct is _UNSET:
            maker = getattr(spec.provider, "direct", None)
            direct = self._direct[spec.id] = maker(spec.model) if maker is not None else None
        if direct is None or has_limits(spec):
            return None
        assert isinstance(direct, Direct)
        estimate = Estimate(estimate_prompt_tokens(body), max_tokens_of(request))
        router = app.router
        attempt = router.admit(spec, estimate.prompt_tokens + estimate.output_tokens)
        if attempt is None:
            return None
        started = time.perf_counter_ns()
        upstream = direct.upstream
        lent = upstream.pool.lend_idle(direct.url, upstream.http2)
        if lent is None:
            router.released(attempt)
            return None
        conn, release, origin, target = lent
        sent = upstream_body(body, sent_model=request.model, sent_stream=False,
                             model=spec.model, stream=False)
        if not conn.send_now(_POST, target, request_headers(_POST, direct.headers, origin, sent),
                             sent):
            conn.abort()
            release()
            router.released(attempt)
            return None
        record = app.lane_open(exchange, self.label)
        provider = spec.provider
        record.model, record.mode = request.model, "never"
        record.provider, record.provider_type = provider.name, provider.type
        record.upstream_model = spec.model
        return _Held(self, exchange, host, record, direct, conn, release, attempt, started,
                     request.model)


class _Held:
    """One request the lane holds: sent upstream, its answer gathered from read callbacks."""

    __slots__ = ("lane", "exchange", "host", "record", "direct", "conn", "release", "attempt",
                 "stats", "public_model", "head", "parts", "size", "read")

    def __init__(self, lane: ChatLane, exchange: Exchange, host: LaneHost,
                 record: RequestRecord, direct: Direct, conn: HTTP11Connection,
                 release: Callable[[], None], attempt: Attempt, started: int,
                 public_model: str) -> None:
        self.lane, self.exchange, self.host, self.record = lane, exchange, host, record
        self.direct, self.conn, self.release, self.attempt = direct, conn, release, attempt
        self.public_model = public_model
        stats = self.stats = CallStats()
        stats.started_ns, stats.attempts = started, 1
        self.head: tuple[int, list[tuple[bytes, bytes]], bytes] | None = None
        self.parts: list[bytes] = []
        self.size = 0
        timeouts = direct.upstream.timeouts
        self.read = timeouts.read
        first = timeouts.first_byte
        conn.watch(self._on_wake, self._on_timeout,
                   None if first is None else asyncio.get_running_loop().time() + first)

    def _on_wake(self) -> None:
        """Data, an EOF or a close on the upstream connection: parse what arrived."""
        try:
            conn = self.conn
            while True:
                event = conn.next_ready()
                if type(event) is bytes:
                    self.size += len(event)
                    if self.size > DEFAULT_MAX_BYTES:
                        raise ValueError("answer too large")
                    self.parts.append(event)
                elif event is NEED_DATA:
                    break
                elif event is END:
                    if self.head is None:
                        raise ValueError("no response head")
                    self._answered()
                    return
                elif type(event) is tuple and self.head is None:
                    status = event[0]
                    if not 200 <= status < 300:
                        raise ValueError("not a 2xx answer")
                    self.head = event
                else:
                    raise ValueError(f"unexpected {event!r}")
            if self.head is not None and self.read is not None:
                conn.expire_at(asyncio.get_running_loop().time() + self.read)
        except Exception as exc:  # noqa: BLE001  # whatever it is, the handler tries afresh
            log.debug("chat lane: %s; the request goes to the handler", exc)
            self._back()

    def _on_timeout(self) -> None:
        self._back()

    def _answered(self) -> None:
        """The whole 2xx answer is in: pool the connection, answer the client."""
        conn, stats, direct = self.conn, self.stats, self.direct
        conn.unwatch()
        conn.response_closed()
        self.release()
        self.release = _nothing
        stats.wait_ns = stats.total_ns = time.perf_counter_ns() - stats.started_ns
        assert self.head is not None
        provider: OpenAICompatibleProvider = self.attempt.spec.provider  # type: ignore[assignment]
        stats.headers = direct.upstream.kept(self.head[1])
        body = self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)
        try:
            answer = provider.answer_of(body, self.public_model, stats)
        except ModelMuxError:
            self._back()
            return
        lane, exchange, record = self.lane, self.exchange, self.record
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
        """Close the upstream connection unless it went back to the pool already."""
        if self.release is not _nothing:
            conn = self.conn
            conn.unwatch()
            conn.abort()
            self.release()
            self.release = _nothing

    def _back(self) -> None:
        """Give the request back to the handler with nothing written; the try is undone."""
        self._drop()
        app = self.lane.app
        app.router.released(self.attempt)
        app.lane_close(self.exchange, undo=True)
        self.host.lane_fallback()

    def cancel(self) -> None:
        """The client went away: close the upstream connection (as a cancelled call does)."""
        self._drop()
        app = self.lane.app
        app.router.released(self.attempt)
        app.lane_close(self.exchange)


def _nothing() -> None:
    """Nothing to give back any more."""
