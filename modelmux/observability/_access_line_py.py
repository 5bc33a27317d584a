"""The access line, formatted straight from a finished request: the pure-Python twin.

``AccessLine.text`` and ``AccessLine.json`` write what the handler that ``logs.setup`` installs
would write for the access log's ``logging`` record (same prefix, time, fields and escapes),
without the record. ``modelmux._speedups.access_line`` is the native twin with the same API;
``observability.access`` picks one through ``_accel``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import TYPE_CHECKING

from modelmux.observability.linelog import Stamp
from modelmux.observability.logs import json_line
from modelmux.observability.record import STREAMED, RequestRecord

if TYPE_CHECKING:
    from modelmux.server.exchange import Exchange

CLIENT_CLOSED = 499
"""The status logged when the client left before any response was sent (nginx's convention)."""

MAX_TEXT = 200
"""Client-chosen text (the model name) is cut to this many characters in the line."""


def ns_to_ms(ns: int) -> float:
    """Nanoseconds as milliseconds, to the microsecond (half up)."""
    return ((ns + 500) // 1000) / 1000


_FRACTION = [f"{us:03d}".rstrip("0") or "0" for us in range(1000)]


def ns_to_ms_text(ns: int) -> str:
    """``str(ns_to_ms(ns))``, from integers: no float rounding or repr on the per-request path."""
    if ns < 0:
        return str(ns_to_ms(ns))
    ms, us = divmod((ns + 500) // 1000, 1000)
    return f"{ms}.{_FRACTION[us]}"


def access_values(record: RequestRecord, exchange: Exchange, now_ns: int,
                  ms: Callable[[int], float | str] = ns_to_ms) -> tuple:  # type: ignore[type-arg]
    """The values of ``access.FIELDS``, in order; None where a field does not apply. Durations
    are milliseconds as ``ms`` gives them: floats, or their text for a line that shows them."""
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


_QUOTED = re.compile(r'[ "=\\]')
_JSON_QUOTED = re.compile(r'["\\]')


def _text(value: str | None) -> str:
    """A string or None as the logfmt message writes it: bare when it is plain (printable, no
    space, quote, ``=`` or backslash, not empty), else JSON-quoted and escaped."""
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
    """Formats the access line of one logger name and process.

    One check covers every text value; only a line with a value that needs quoting (a hostile
    model name, a path with a space) formats its strings one by one. ``wall_ns`` is the time the
    line shows (``time.time_ns()`` when None); ``now_ns`` is on the exchange's clock.
    """

    __slots__ = ("stamp", "text_prefix", "json_prefix")

    def __init__(self, name: str, pid: int) -> None:
        self.stamp = Stamp()
        self.text_prefix = f" INFO {name}[{pid}]: "
        self.json_prefix = (f'", "level": "info", "logger": {json.dumps(name)}, "pid": {pid}, '
                            '"message": ')

    def text(self, record: RequestRecord, exchange: Exchange, now_ns: int,
             wall_ns: int | None = None) -> str:
        """``TEXT_FORMAT`` with the logfmt message, and its newline."""
        message = _message(access_values(record, exchange, now_ns, ns_to_ms_text))[0]
        stamp = self.stamp.at(time.time_ns() if wall_ns is None else wall_ns)
        return f"{stamp}{self.text_prefix}{message}\n"

    def json(self, record: RequestRecord, exchange: Exchange, now_ns: int,
             wall_ns: int | None = None) -> str:
        """``JsonFormatter``'s keys (time, level, logger, pid, message), then every field."""
        values = access_values(record, exchange, now_ns, ns_to_ms_text)
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
        stamp = self.stamp.at(time.time_ns() if wall_ns is None else wall_ns)
        return (f'{{"time": "{stamp}{self.json_prefix}{quoted}, '
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
    """The logfmt message of ``access_values``, and whether every string in it was plain
    (printable, no space, quote, ``=`` or backslash, not empty)."""
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
