"""OpenTelemetry tracing over OTLP/HTTP (protobuf): imported only when ``[telemetry]`` is on.

One SERVER span per request (HTTP server conventions, continuing an incoming W3C
``traceparent``/``tracestate``), one GenAI CLIENT span per provider call (``chat {model}``,
covering its retries, as the GenAI conventions ask), and under it one HTTP CLIENT span per
upstream try whose context goes upstream in ``traceparent``. Spans are started with an
explicit parent, never through the context variable, so nothing leaks across tasks. The
provider is this App's own (no global tracer provider is set) and is shut down with it.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from modelmux.errors import Headers
from modelmux.observability.access import status_of
from modelmux.observability.genai import Attributes, server_attributes

if TYPE_CHECKING:
    from modelmux.config.schema import TelemetryConfig
    from modelmux.observability.record import RequestRecord
    from modelmux.server.exchange import Exchange


_PROPAGATOR = TraceContextTextMapPropagator()


def _epoch_ns(perf_ns: int) -> int:
    """A ``perf_counter_ns`` instant as wall-clock nanoseconds, for a span's start time."""
    return time.time_ns() - (time.perf_counter_ns() - perf_ns)


def _client_attributes(client: str) -> Attributes:
    """``client.address``/``client.port`` of ``host:port`` or ``[v6]:port``."""
    host, sep, port = client.rpartition(":")
    if not sep or not port.isdigit():
        return {"client.address": client} if client else {}
    return {"client.address": host.strip("[]"), "client.port": int(port)}


def _inject(span: Span) -> Headers:
    """The W3C trace headers that make ``span`` the parent of what the upstream does."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return [(key.encode("ascii"), value.encode("latin-1")) for key, value in carrier.items()]


class OtelServerSpan:
    """The SERVER span of one request; ``context`` parents its provider calls."""

    __slots__ = ("context", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.context = trace.set_span_in_context(span)

    @property
    def trace_id(self) -> str:
        return format(self.span.get_span_context().trace_id, "032x")

    def end(self, record: RequestRecord, exchange: Exchange) -> None:
        span = self.span
        if not span.is_recording():  # unsampled: the attributes would be thrown away
            return
        status = status_of(exchange)
        attributes: Attributes = {"modelmux.request_id": record.request_id}
        if exchange.started:
            attributes["http.response.status_code"] = status
        else:
            attributes["error.type"] = "client_closed"
        if status >= 500:
            attributes["error.type"] = str(status)
            span.set_status(Status(StatusCode.ERROR))
        if record.model is not None:
            attributes["gen_ai.request.model"] = record.model[:200]
        if record.provider is not None:
            attributes["modelmux.provider"] = record.provider
        if record.mode is not None:
            attributes["modelmux.stream_mode"] = record.mode
        if record.overhead_ns is not None:
            attributes["modelmux.overhead_ms"] = round(record.overhead_ns / 1e6, 3)
        stats = record.stats
        if stats is not None:
            attributes["modelmux.attempts"] = stats.attempts
            if stats.tokens is not None:
                attributes["gen_ai.usage.input_tokens"] = stats.tokens[0]
                attributes["gen_ai.usage.output_tokens"] = stats.tokens[1]
        if exchange.started and not exchange.ended:
            attributes["modelmux.completed"] = False
        span.set_attributes(attributes)
        span.end()


class OtelCallSpan:
    """The GenAI CLIENT span of one provider call and the HTTP span of its current try."""

    __slots__ = ("_http", "_server_known", "_tracer", "span")

    def __init__(self, tracer: trace.Tracer, span: Span) -> None:
        self.span = span
        self._tracer = tracer
        self._http: Span | None = None
        self._server_known = False

    @property
    def recording(self) -> bool:
        return self.span.is_recording()

    def attempt(self, url: str, resend: int) -> Headers:
        if not self.span.is_recording():  # no HTTP span; the sampled=0 flag still goes upstream
            return _inject(self.span)
        self._end_http()
        where = server_attributes(url)
        if not self._server_known:
            self._server_known = True
            self.span.set_attributes(where)
        attributes: Attributes = {"http.request.method": "POST",
                                  "url.full": url.partition("?")[0], **where}
        if resend:
            attributes["http.request.resend_count"] = resend
        http = self._http = self._tracer.start_span(
            "POST", context=trace.set_span_in_context(self.span), kind=SpanKind.CLIENT,
            attributes=attributes)
        return _inject(http)

    def attempt_status(self, status: int) -> None:
        http = self._http
        if http is not None:
            http.set_attribute("http.response.status_code", status)
            if status >= 400:
                http.set_attribute("error.type", str(status))
                http.set_status(Status(StatusCode.ERROR))

    def attempt_failed(self, code: str) -> None:
        http = self._http
        if http is not None:
            http.set_attribute("error.type", code)
            http.set_status(Status(StatusCode.ERROR))
            self._end_http()

    def set(self, attributes: Attributes) -> None:
        self.span.set_attributes(attributes)

    def end(self, error: str | None) -> None:
        self._end_http()
        if error is not None:
            self.span.set_attribute("error.type", error)
            self.span.set_status(Status(StatusCode.ERROR))
        self.span.end()

    def _end_http(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            http.end()


class OtelTracer:
    """This App's tracer provider: sampler, OTLP/HTTP exporter behind a batch processor."""

    def __init__(self, config: TelemetryConfig, version: str) -> None:
        resource = Resource.create({"service.name": config.service_name,
                                    "service.version": version})
        self.provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
            shutdown_on_exit=False)
        exporter = OTLPSpanExporter(endpoint=config.endpoint, headers=dict(config.headers),
                                    timeout=config.export_timeout)
        self.provider.add_span_processor(
            BatchSpanProcessor(exporter, schedule_delay_millis=config.batch_delay_ms,
                               export_timeout_millis=config.export_timeout * 1000))
        self.tracer = self.provider.get_tracer("modelmux", version)

    def server_span(self, exchange: Exchange, route: str) -> OtelServerSpan:
        carrier = {}
        for name in (b"traceparent", b"tracestate"):
            value = exchange.header(name)
            if value is not None:
                carrier[name.decode()] = value.decode("latin-1")
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        matched = route != "unmatched"
        attributes: Attributes = {"http.request.method": exchange.method,
                                  "url.path": exchange.path,
                                  "network.protocol.version": exchange.http_version,
                                  **_client_attributes(exchange.client)}
        if matched:
            attributes["http.route"] = route
        agent = exchange.header(b"user-agent")
        if agent is not None:
            attributes["user_agent.original"] = agent[:200].decode("latin-1")
        span = self.tracer.start_span(
            f"{exchange.method} {route}" if matched else exchange.method, context=parent,
            kind=SpanKind.SERVER, attributes=attributes, start_time=_epoch_ns(exchange.started_ns))
        return OtelServerSpan(span)

    def call_span(self, parent: object, name: str) -> OtelCallSpan:
        context = parent.context if isinstance(parent, OtelServerSpan) else None
        span = self.tracer.start_span(name, context=context, kind=SpanKind.CLIENT)
        return OtelCallSpan(self.tracer, span)

    async def aclose(self) -> None:
        """Export what is still queued (up to the export timeout) and stop the exporter."""
        await asyncio.to_thread(self.provider.shutdown)
