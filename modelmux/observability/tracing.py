"""The tracing face: ``build_tracer`` returns None when ``[telemetry]`` is off, else the
OpenTelemetry tracer from ``modelmux.observability.otel``.

Off, nothing of OpenTelemetry is imported and a request pays one ``is None`` check. What the
app, the chat route and the transport see of a tracer are the protocols in ``record``, so none
of them imports OpenTelemetry either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmux.config.extras import INSTALL_HINT, missing_extra
from modelmux.config.problems import ConfigError

if TYPE_CHECKING:
    from modelmux.config.schema import TelemetryConfig
    from modelmux.observability.record import Tracer


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
