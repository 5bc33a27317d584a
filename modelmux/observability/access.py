"""The access log: one line per request on the ``modelmux.access`` logger.

The line, made from a ``record.RequestRecord`` and its exchange, names the request
id, client, method, path, model, provider, status, tokens, timings, bytes and stream mode;
never a header, the query string or a body, so no secret and no prompt reaches the log.
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING

from modelmux import _accel
from modelmux.observability import _access_line_py
from modelmux.observability._access_line_py import (CLIENT_CLOSED, MAX_TEXT, access_values,
                                                    ns_to_ms, ns_to_ms_text)
from modelmux.observability.logs import ONE_LINE, json_line, line_log
from modelmux.observability.record import RequestRecord

if TYPE_CHECKING:
    from modelmux.server.exchange import Exchange

Fields = dict[str, str | float | None]

AccessLine = _accel.load("access_line", "modelmux.observability._access_line_py").AccessLine
"""Formats the line as ``logs.setup``'s handler would: the native twin when built (``_accel``)."""

__all__ = ["CLIENT_CLOSED", "FIELDS", "MAX_TEXT", "AccessLine", "AccessLog", "access_fields",
           "access_values", "logfmt", "status_of", "ns_to_ms", "ns_to_ms_text"]


def status_of(exchange: Exchange) -> int:
    """The status sent, or ``CLIENT_CLOSED`` when nothing was."""
    return exchange.status if exchange.started else CLIENT_CLOSED


FIELDS = ("request_id", "client", "key", "method", "path", "status", "model", "provider",
          "stream_mode", "attempts", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "ttft_ms",
          "overhead_ms", "bytes_received", "bytes_sent", "completed", "trace_id")
"""The access log's fields, in line order."""


def access_fields(record: RequestRecord, exchange: Exchange, now_ns: int) -> Fields:
    """The access log's fields, in line order; None where a field does not apply."""
    return dict(zip(FIELDS, access_values(record, exchange, now_ns)))


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
    """Writes one INFO line per request.

    Under ``logs.setup`` (``modelmux serve``) the line is formatted here and appended to the
    buffered ``LineLog``: no LogRecord, no formatter, no lock, no system call per request.
    Elsewhere (embedding, tests that capture records) it is an ordinary ``logging`` record whose
    message is the logfmt line and whose attributes are the fields (``extra=``). Nothing is
    computed when the logger is off.
    """

    def __init__(self, logger: logging.Logger | None = None, *, enabled: bool = True) -> None:
        """``enabled=False`` (``[logging] access_log = false``) writes nothing."""
        self.logger = logger or logging.getLogger("modelmux.access")
        self.enabled = enabled
        self._line: _access_line_py.AccessLine | None = None  # either twin: one API

    def log(self, record: RequestRecord, exchange: Exchange, now_ns: int) -> None:
        if not self.enabled or not self.logger.isEnabledFor(logging.INFO):
            return
        lines = line_log(self.logger)
        if lines is None:
            fields = access_fields(record, exchange, now_ns)
            self.logger.info(ONE_LINE, logfmt(fields), extra=fields)
            return
        line = self._line
        if line is None:
            line = self._line = AccessLine(self.logger.name, os.getpid())
        if lines.fmt == "json":
            lines.add(line.json(record, exchange, now_ns))
        else:
            lines.add(line.text(record, exchange, now_ns))
