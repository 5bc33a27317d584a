"""The tracing face: ``build_tracer`` returns None when ``[telemetry]`` is off, else the
OpenTelemetry tracer from ``modelmux.observability.otel``.

Off, nothing of OpenTelemetry is imported and a request pays one ``is None`` check. The
protocols below are what the app, the chat route and the transport see of a tracer, so none of
them imports OpenTelemetry either.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Protocol

from modelmux.config.problems import ConfigError

if TYPE_CHECKING:
    from modelmux.config.schema import TelemetryConfig
    from modelmux.observability.access import RequestRecord
    from modelmux.observability.genai import Attributes
    from modelmux.server.exchange import Exchange

Headers = list[tuple[bytes, bytes]]

EXTRA_MODULES = ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http.trace_exporter",
                 "opentelemetry.trace.propagation.tracecontext")
INSTALL_HINT = "pip install 'modelmux[otel]'"


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


def missing_extra() -> str | None:
    """The first module of the ``otel`` extra that is not installed, else None.

    Looking imports the ``opentelemetry`` namespace packages, so call this only when tracing
    is enabled.
    """
    for name in EXTRA_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except ImportError:
            return name
    return None


def build_tracer(config: TelemetryConfig, version: str) -> Tracer | None:
    """The tracer ``config`` asks for, or None when tracing is off.

    Raises:
        ConfigError: tracing is enabled but the ``otel`` extra is not installed.
    """
    if not config.enabled:
        return None
    missing = missing_extra()
    if missing is not None:
        raise ConfigError(f"[telemetry] enabled = true needs the otel extra ({INSTALL_HINT}): "
                          f"{missing} is not installed")
    from modelmux.observability.otel import OtelTracer

    return OtelTracer(config, version)
