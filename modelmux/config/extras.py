"""The optional ``otel`` extra that ``[telemetry] enabled = true`` needs, and whether it is
installed: config's check reports it, and the tracer refuses to start without it."""

from __future__ import annotations

import importlib.util

EXTRA_MODULES = ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http.trace_exporter",
                 "opentelemetry.trace.propagation.tracecontext")
INSTALL_HINT = "pip install 'modelmux[otel]'"


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
