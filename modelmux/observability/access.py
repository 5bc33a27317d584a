"""The access log: one line per request on the ``modelmux.access`` logger.

The line, made from a ``record.RequestRecord`` and its exchange, names the request
id, client, method, path, model, provider, status, tokens, timings, bytes and stream mode;
never a header, the query string or a body, so no secret and no prompt reaches the log.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from modelmux.observability.logs import ONE_LINE, json_line

from modelmux.observability.record import RequestRecord

if TYPE_CHECKING:
    from modelmux.server.exchange import Exchange

CLIENT_CLOSED = 499
"""The status logged when the client left before any response was sent (nginx's convention)."""

MAX_TEXT = 200
"""Client-chosen text (the model name) is cut to this many characters in the line."""

Fields = dict[str, str | float | None]


def status_of(exchange: Exchange) -> int:
    """The status sent, or ``CLIENT_CLOSED`` when nothing was."""
    return exchange.status if exchange.started else CLIENT_CLOSED


def _ms(ns: int) -> float:
    return round(ns / 1e6, 3)


def access_fields(record: RequestRecord, exchange: Exchange, now_ns: int) -> Fields:
    """The access log's fields, in line order; None where a field does not apply."""
    stats = record.stats
    tokens = stats.tokens if stats is not None else None
    status = status_of(exchange)
    ttft = None
    if record.streamed and status < 400 and exchange.head_ns:
        ttft = _ms(exchange.head_ns - exchange.started_ns)
    return {
        "request_id": record.request_id,
        "client": exchange.client,
        "method": exchange.method,
        "path": exchange.path,
        "status": status,
        "model": record.model[:MAX_TEXT] if record.model is not None else None,
        "provider": record.provider,
        "stream_mode": record.mode,
        "attempts": stats.attempts if stats is not None else None,
        "tokens_in": tokens[0] if tokens is not None else None,
        "tokens_out": tokens[1] if tokens is not None else None,
        "latency_ms": _ms(now_ns - exchange.started_ns),
        "ttft_ms": ttft,
        "overhead_ms": _ms(record.overhead_ns) if record.overhead_ns is not None else None,
        "bytes_received": exchange.bytes_received,
        "bytes_sent": exchange.bytes_sent,
        "completed": exchange.ended,
        "trace_id": record.span.trace_id if record.span is not None else None,
    }


def _logfmt_value(value: str | float | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if value and value.isprintable() and not any(c in value for c in ' "=\\'):
        return value
    return json_line(json.dumps(value, ensure_ascii=False))


def logfmt(fields: Fields) -> str:
    """``key=value`` pairs on one line; a value with spaces, quotes, control characters or line
    separators is JSON-quoted, every one of those escaped."""
    return " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items())


class AccessLog:
    """Writes one INFO line per request; the fields also travel as LogRecord attributes.

    The text line is logfmt; a JSON formatter finds the same fields as attributes of the
    record (``extra=``). Nothing is computed when the logger is off.
    """

    def __init__(self, logger: logging.Logger | None = None, *, enabled: bool = True) -> None:
        """``enabled=False`` (``[logging] access_log = false``) writes nothing."""
        self.logger = logger or logging.getLogger("modelmux.access")
        self.enabled = enabled

    def log(self, record: RequestRecord, exchange: Exchange, now_ns: int) -> None:
        if not self.enabled or not self.logger.isEnabledFor(logging.INFO):
            return
        fields = access_fields(record, exchange, now_ns)
        self.logger.info(ONE_LINE, logfmt(fields), extra=fields)
