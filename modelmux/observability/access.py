"""The access log: one line per request on the ``modelmux.access`` logger.

The line, made from a ``record.RequestRecord`` and its exchange, names the request
id, client, method, path, model, provider, status, tokens, timings, bytes and stream mode;
never a header, the query string or a body, so no secret and no prompt reaches the log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import TYPE_CHECKING

from modelmux.observability.linelog import Stamp
from modelmux.observability.logs import ONE_LINE, json_line, line_log
from modelmux.observability.record import STREAMED, RequestRecord

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


FIELDS = ("request_id", "client", "key", "method", "path", "status", "model", "provider",
          "stream_mode", "attempts", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "ttft_ms",
          "overhead_ms", "bytes_received", "bytes_sent", "completed", "trace_id")
"""The access log's fields, in line order."""


def _ms(ns: int) -> float:
    """Nanoseconds as milliseconds, to the microsecond (half up)."""
    return ((ns + 500) // 1000) / 1000


_FRACTION = [f"{us:03d}".rstrip("0") or "0" for us in range(1000)]


def _ms_text(ns: int) -> str:
    """``str(_ms(ns))``, from integers: no float rounding or repr on the per-request path."""
    if ns < 0:
        return str(_ms(ns))
    ms, us = divmod((ns + 500) // 1000, 1000)
    return f"{ms}.{_FRACTION[us]}"


def access_values(record: RequestRecord, exchange: Exchange, now_ns: int,
                  ms: Callable[[int], float | str] = _ms) -> tuple:  # type: ignore[type-arg]
    """The values of ``FIELDS``, in order; None where a field does not apply. Durations are
    milliseconds as ``ms`` gives them: floats, or their text for a line that shows them twice."""
    stats = record.stats
    status = exchange.status if exchange.started else CLIENT_CLOSED
    ttft = None
    if status < 400 and exchange.head_ns and record.mode in STREAMED:
        ttft = ms(exchange.head_ns - exchange.started_ns)
    model = record.model
    overhead = record.overhead_ns
    span = record.span
    if stats is None:
        attempts = tokens_in = tokens_out = None
    else:
        attempts = stats.attempts
        tokens = stats.tokens
        tokens_in, tokens_out = (None, None) if tokens is None else tokens
    return (record.request_id, exchange.client, record.key, exchange.method, exchange.path,
            status, model[:MAX_TEXT] if model is not None else None, record.provider,
            record.mode, attempts, tokens_in, tokens_out, record.cost_usd,
            ms(now_ns - exchange.started_ns), ttft, ms(overhead) if overhead is not None else None,
            exchange.bytes_received, exchange.bytes_sent, exchange.ended,
            span.trace_id if span is not None else None)


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


_QUOTED = re.compile(r'[ "=\\]')
_JSON_QUOTED = re.compile(r'["\\]')


def _text(value: str | None) -> str:
    """``_logfmt_value`` for a string or None."""
    if value is None:
        return "-"
    if value and value.isprintable() and _QUOTED.search(value) is None:
        return value
    return json_line(json.dumps(value, ensure_ascii=False))


def _json(value: str | None) -> str:
    """A string or None as ``JsonFormatter`` writes it."""
    if value is None:
        return "null"
    if value.isprintable() and _JSON_QUOTED.search(value) is None:
        return f'"{value}"'
    return json_line(encode_basestring(value))


class AccessLine:
    """Formats the access line straight from the request, as the handler that ``logs.setup``
    installs formats the ``logging`` record (same prefix, time, fields, escapes).

    One check covers every text value; only a line with a value that needs quoting (a hostile
    model name, a path with a space) formats its strings one by one.
    """

    __slots__ = ("stamp", "text_prefix", "json_prefix")

    def __init__(self, name: str, pid: int) -> None:
        self.stamp = Stamp()
        self.text_prefix = f" INFO {name}[{pid}]: "
        self.json_prefix = (f'", "level": "info", "logger": {json.dumps(name)}, "pid": {pid}, '
                            '"message": ')

    def text(self, record: RequestRecord, exchange: Exchange, now_ns: int) -> str:
        """``TEXT_FORMAT`` with the logfmt message, and its newline."""
        message = _message(access_values(record, exchange, now_ns, _ms_text))[0]
        return f"{self.stamp.at(time.time_ns())}{self.text_prefix}{message}\n"

    def json(self, record: RequestRecord, exchange: Exchange, now_ns: int) -> str:
        """``JsonFormatter``'s keys (time, level, logger, pid, message), then every field."""
        values = access_values(record, exchange, now_ns, _ms_text)
        message, plain = _message(values)
        (request_id, client, key, method, path, status, model, provider, mode, attempts,
         tokens_in, tokens_out, cost, latency, ttft, overhead, received, sent, completed,
         trace_id) = values
        if plain:  # every string plain: each is "value", the message has no quote or backslash
            quoted = f'"{message}"'
            request_id, client, method, path = (f'"{request_id}"', f'"{client}"', f'"{method}"',
                                                f'"{path}"')
            model = "null" if model is None else f'"{model}"'
            provider = "null" if provider is None else f'"{provider}"'
            mode = "null" if mode is None else f'"{mode}"'
            trace_id = "null" if trace_id is None else f'"{trace_id}"'
            key = "null" if key is None else f'"{key}"'
        else:
            quoted = _json(message)
            request_id, client, key, method, path, model, provider, mode, trace_id = map(
                _json, (request_id, client, key, method, path, model, provider, mode, trace_id))
        return (f'{{"time": "{self.stamp.at(time.time_ns())}{self.json_prefix}{quoted}, '
                f'"request_id": {request_id}, "client": {client}, "key": {key}, '
                f'"method": {method}, '
                f'"path": {path}, "status": {status}, "model": {model}, '
                f'"provider": {provider}, "stream_mode": {mode}, '
                f'"attempts": {"null" if attempts is None else attempts}, '
                f'"tokens_in": {"null" if tokens_in is None else tokens_in}, '
                f'"tokens_out": {"null" if tokens_out is None else tokens_out}, '
                f'"cost_usd": {"null" if cost is None else cost}, '
                f'"latency_ms": {latency}, "ttft_ms": {"null" if ttft is None else ttft}, '
                f'"overhead_ms": {"null" if overhead is None else overhead}, '
                f'"bytes_received": {received}, "bytes_sent": {sent}, '
                f'"completed": {"true" if completed else "false"}, '
                f'"trace_id": {trace_id}}}\n')


def _message(values: tuple) -> tuple[str, bool]:  # type: ignore[type-arg]
    """``logfmt`` of ``access_values``, and whether every string in it
    was plain (printable, no space, quote, ``=`` or backslash, not empty)."""
    (request_id, client, key, method, path, status, model, provider, mode, attempts,
     tokens_in, tokens_out, cost, latency, ttft, overhead, received, sent, completed,
     trace_id) = values
    probe = (f"{request_id}{client}{key or ''}{method}{path}{model or ''}{provider or ''}"
             f"{mode or ''}{trace_id or ''}")
    plain = (probe.isprintable() and " " not in probe and '"' not in probe and "=" not in probe
             and "\\" not in probe
             and "" not in (request_id, client, key, method, path, model, provider, mode,
                            trace_id))
    if not plain:
        request_id, client, key, method, path, model, provider, mode, trace_id = map(
            _text, (request_id, client, key, method, path, model, provider, mode, trace_id))
    return (f"request_id={request_id} client={client} key={'-' if key is None else key} "
            f"method={method} path={path} "
            f"status={status} model={'-' if model is None else model} "
            f"provider={'-' if provider is None else provider} "
            f"stream_mode={'-' if mode is None else mode} "
            f"attempts={'-' if attempts is None else attempts} "
            f"tokens_in={'-' if tokens_in is None else tokens_in} "
            f"tokens_out={'-' if tokens_out is None else tokens_out} "
            f"cost_usd={'-' if cost is None else cost} latency_ms={latency} "
            f"ttft_ms={'-' if ttft is None else ttft} "
            f"overhead_ms={'-' if overhead is None else overhead} bytes_received={received} "
            f"bytes_sent={sent} completed={'true' if completed else 'false'} "
            f"trace_id={'-' if trace_id is None else trace_id}"), plain


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
        self._line: AccessLine | None = None

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
