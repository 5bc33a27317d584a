"""What one request did, and the tracing interfaces that watch it.

``RequestRecord`` collects what the app and the routes learn about one request; it observes the
exchange and hands itself to a callback once the exchange is over (the access log, metrics and
the server span read it). ``Tracer``, ``ServerSpan`` and ``CallSpan`` are what the request path
sees of a tracer (``tracing.build_tracer`` makes one), so none of it imports OpenTelemetry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from modelmux.errors import Headers

if TYPE_CHECKING:
    from modelmux.observability.genai import Attributes
    from modelmux.providers.base import CallStats
    from modelmux.server.exchange import Exchange

STREAMED = frozenset({"standard", "buffered"})


class RequestRecord:
    """What one request did; routes fill in the chat fields, the exchange supplies the rest."""

    __slots__ = ("request_id", "route", "model", "provider", "provider_type", "upstream_model",
                 "mode", "stats", "overhead_ns", "span", "cost_usd", "team", "key", "_done")

    def __init__(
        self,
        request_id: str,
        route: str,
        done: Callable[[RequestRecord, Exchange], None] | None = None,
    ) -> None:
        self.request_id = request_id
        self.route = route
        self.model: str | None = None  # as the client asked
        self.provider: str | None = None
        self.provider_type: str | None = None
        self.upstream_model: str | None = None
        self.mode: str | None = None  # the delivery: standard, buffered or never
        self.stats: CallStats | None = None
        self.overhead_ns: int | None = None
        self.span: ServerSpan | None = None  # set only when tracing is on
        self.cost_usd: float | None = None  # set by spend's cost stage when the price is known
        self.team: str | None = None  # the caller's team, when auth knows one
        self.key: str | None = None  # the caller's key prefix or JWT subject (never the key)
        self._done = done

    @property
    def streamed(self) -> bool:
        return self.mode in STREAMED

    def exchange_done(self, exchange: Exchange) -> None:
        if self._done is not None:
            self._done(self, exchange)


class ServerSpan(Protocol):
    """The span of one inbound request."""

    @property
    def trace_id(self) -> str:
        """32 lower-case hex digits, as in ``traceparent``."""

    def end(self, record: RequestRecord, exchange: Exchange) -> None: ...


class CallSpan(Protocol):
    """The GenAI client span of one provider call, and the HTTP spans of its upstream tries."""

    @property
    def recording(self) -> bool:
        """False when the sampler dropped the trace: attributes would be thrown away, so the
        caller skips working them out."""

    def attempt(self, url: str, resend: int) -> Headers:
        """Start the span of one upstream HTTP try; returns the headers that carry it upstream
        (``traceparent``, ``tracestate``). Unsampled, no span: the headers carry this call's
        context with the sampled flag off, so the upstream does not sample either."""

    def attempt_status(self, status: int) -> None: ...

    def attempt_failed(self, code: str) -> None: ...

    def set(self, attributes: Attributes) -> None: ...

    def end(self, error: str | None) -> None: ...


class Tracer(Protocol):
    def server_span(self, exchange: Exchange, route: str) -> ServerSpan: ...

    def call_span(self, parent: ServerSpan | None, name: str) -> CallSpan:
        """A started call span; its attributes are ``set`` once it is known to be recording."""

    async def aclose(self) -> None: ...
