"""``[logging] debug_bodies``: request, upstream and response bodies at DEBUG, secrets redacted.

Off by default, and then nothing here runs: no body, prompt or answer reaches any log. When on,
each body is logged on the ``modelmux.bodies`` logger, cut to ``MAX_BODY`` bytes, after
``redact_json`` (or ``redact_text`` for what is not JSON) has replaced every credential it can
recognise: values of key-like members (``api_key``, ``authorization``, ``access_token``, ...;
never a number, so usage counts stay) and strings shaped like keys (``sk-...``, ``Bearer ...``,
Google ``AIza...``/``ya29.`` tokens).
Headers are logged by name with the values of credential headers replaced.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

REDACTED = "[REDACTED]"
MAX_BODY = 64 * 1024
"""Bytes of one body that are logged; the rest is counted, not shown."""

_SECRET_NAME = re.compile(
    r"(api[-_]?key|apikey|secret|token(?!s|_?count)|password|passwd|authori[sz]ation|credential|"
    r"private[-_]?key|client[-_]?secret|cookie|signature|x-goog-api-key|session)",
    re.IGNORECASE)
"""Credential names; ``token`` but not a count of tokens (``max_tokens``, ``prompt_tokens``,
``promptTokenCount``, ``completion_tokens_details``)."""
_SECRET_VALUE = re.compile(
    r"(?:sk-[A-Za-z0-9_\-]{8,}|sk_[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|ya29\.[0-9A-Za-z_\-.]+"
    r"|(?:Bearer|Basic)\s+[A-Za-z0-9_\-.=:/+]{8,}|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-.]+"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$))")
_MAX_DEPTH = 64


def is_secret_name(name: str) -> bool:
    """True for a header or JSON member name that holds a credential."""
    return bool(_SECRET_NAME.search(name))


def _hides(value: Any) -> bool:
    """Whether a credential-named member's value is replaced: not a number (no credential is
    one; ``token_limit`` is a setting) and not empty, so the log still shows what was absent."""
    return value is not None and value != "" and not isinstance(value, (int, float))


def redact_text(text: str) -> str:
    """``text`` with every key-shaped substring replaced."""
    return _SECRET_VALUE.sub(REDACTED, text)


def _redact(value: Any, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return REDACTED
    if isinstance(value, dict):
        return {key: REDACTED if is_secret_name(str(key)) and _hides(value[key])
                else _redact(value[key], depth + 1) for key in value}
    if isinstance(value, list):
        return [_redact(item, depth + 1) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_json(body: bytes) -> str:
    """A body for the log: JSON re-encoded with credentials redacted, else redacted text."""
    text = body[:MAX_BODY].decode("utf-8", "replace")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return redact_text(text) + _cut(body)
    return json.dumps(_redact(document, 0), ensure_ascii=False)[:MAX_BODY] + _cut(body)


def _cut(body: bytes) -> str:
    return f" ... ({len(body) - MAX_BODY} more bytes)" if len(body) > MAX_BODY else ""


def redact_headers(headers: list[tuple[bytes, bytes]]) -> str:
    """``name: value`` pairs, credential headers' values replaced."""
    out = []
    for name, value in headers:
        key = name.decode("latin-1")
        shown = REDACTED if is_secret_name(key) else redact_text(value.decode("latin-1"))
        out.append(f"{key}: {shown}")
    return "; ".join(out)


class BodyLog:
    """Writes bodies to ``modelmux.bodies`` at DEBUG; built only when ``debug_bodies`` is on
    and that logger is enabled for DEBUG as the App is built."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("modelmux.bodies")

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)

    def request(self, request_id: str, body: bytes) -> None:
        """The client's request body."""
        if self.enabled:
            self.logger.debug("request %s body: %s", request_id, redact_json(body),
                              extra={"request_id": request_id, "body_kind": "request"})

    def upstream(self, request_id: str, url: str, headers: list[tuple[bytes, bytes]],
                 body: bytes) -> None:
        """One upstream attempt: URL without its query, headers and body, all redacted."""
        if self.enabled:
            self.logger.debug("request %s upstream POST %s headers: %s body: %s", request_id,
                              url.partition("?")[0], redact_headers(headers), redact_json(body),
                              extra={"request_id": request_id, "body_kind": "upstream"})

    def response(self, request_id: str, body: bytes | StreamBodies) -> None:
        """The answer the client gets: one JSON body, or a stream's chunks."""
        if self.enabled:
            text = body.text() if isinstance(body, StreamBodies) else redact_json(body)
            self.logger.debug("request %s response body: %s", request_id, text,
                              extra={"request_id": request_id, "body_kind": "response"})


class StreamBodies:
    """A stream's client chunks, kept up to ``MAX_BODY`` bytes for one log line at the end."""

    __slots__ = ("_dropped", "_parts", "_size")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._dropped = 0

    def feed(self, piece: bytes) -> None:
        room = MAX_BODY - self._size
        if room <= 0:
            self._dropped += len(piece)
            return
        self._parts.append(piece[:room])
        self._size += min(len(piece), room)
        self._dropped += max(len(piece) - room, 0)

    def text(self) -> str:
        text = redact_text(b"".join(self._parts).decode("utf-8", "replace"))
        return text + (f" ... ({self._dropped} more bytes)" if self._dropped else "")
