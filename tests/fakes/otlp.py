"""A loopback OTLP/HTTP trace collector: ``POST /v1/traces`` with a protobuf
``ExportTraceServiceRequest`` (OTLP specification, "OTLP/HTTP"), decoded with opentelemetry-proto.

Runs its own thread, so a ``modelmux serve`` process and an in-process app (whose exporter
thread posts synchronously) can both reach it. Spans are kept flattened, attributes decoded.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

SERVER, CLIENT = 2, 3  # Span.SpanKind values


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


@dataclass
class Span:
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    status_code: int
    start_ns: int
    end_ns: int


@dataclass
class Collector:
    """Collects every exported span; ``content_types`` and ``paths`` of the posts it got."""

    spans: list[Span] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def add(self, path: str, headers: dict[str, str], body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        found = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    found.append(Span(
                        name=span.name, kind=span.kind, trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(), parent_id=span.parent_span_id.hex(),
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        resource=resource, status_code=span.status.code,
                        start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano))
        with self._lock:
            self.paths.append(path)
            self.content_types.append(headers.get("content-type", ""))
            self.headers.append(headers)
            self.spans.extend(found)

    def _ready(self, count: int) -> list[Span] | None:
        with self._lock:
            return list(self.spans) if len(self.spans) >= count else None

    def _missing(self, count: int) -> AssertionError:
        with self._lock:
            return AssertionError(f"expected {count} spans, got {len(self.spans)}: "
                                  f"{[s.name for s in self.spans]}")

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Span]:
        """Every span once at least ``count`` arrived (polled, bounded by ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (spans := self._ready(count)) is not None:
                return spans
            time.sleep(0.02)
        raise self._missing(count)

    async def gather(self, count: int, timeout: float = 15.0) -> list[Span]:
        """``wait_for`` without blocking the event loop."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (spans := self._ready(count)) is not None:
                return spans
            await asyncio.sleep(0.02)
        raise self._missing(count)

    def __enter__(self) -> Self:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                collector.add(self.path, headers, body)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
