"""Streaming modes: which delivery a chat request gets, and the buffered-mode coalescer.

Both are sans-I/O. ``choose_mode`` is a pure function of the ``[streaming]`` config and the
request; ``Coalescer`` turns SSE-framed OpenAI chunks into fewer, larger ones against a clock
it is given. Reading the provider and running the flush timer is ``modelmux.api.chat``'s job.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable
from typing import Literal, NamedTuple, get_args

import msgspec

from modelmux.codec.sse import DONE, SSEDecoder, encode_data
from modelmux.config.schema import StreamingConfig, StreamMode
from modelmux.errors import InvalidRequest

__all__ = ["MODE_HEADER", "ClientPattern", "Coalescer", "Delivery", "choose_mode", "parse_pattern"]

Delivery = Literal["standard", "buffered", "never"]
"""What the client gets: chunks relayed as they come, coalesced chunks, or one JSON body."""

MODE_HEADER = b"x-modelmux-stream-mode"
_MODES: dict[str, StreamMode] = {mode: mode for mode in get_args(StreamMode)}

_FAMILIES = (
    "chrome", "firefox", "safari", "edge", "vscode", "visual studio code",
    "jetbrains", "intellij", "pycharm", "webstorm", "goland", "rustrover", "clion", "phpstorm",
    "rider", "datagrip",
)
# Whole words only: 1.x's plain substring test sent "knowledge-bot" ("edge") down the buffered path.
_BROWSER_OR_IDE = re.compile(r"(?<![a-z])(" + "|".join(map(re.escape, _FAMILIES)) + r")(?![a-z])")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")


class ClientPattern(NamedTuple):
    """One ``never_clients`` entry: a case-insensitive substring of one header's value."""

    header: bytes
    needle: str
    text: str


def parse_pattern(text: str) -> ClientPattern:
    """``"goose"`` matches the User-Agent; ``"x-client: goose"`` matches the ``x-client`` header.

    An empty value (``"x-client:"``) matches any request that sends the header.
    """
    name, sep, value = text.partition(":")
    name = name.strip().lower()
    if sep and _TOKEN.fullmatch(name):
        return ClientPattern(name.encode("ascii"), value.strip().lower(), text)
    return ClientPattern(b"user-agent", text.strip().lower(), text)


@functools.lru_cache(maxsize=32)
def _patterns(texts: tuple[str, ...]) -> tuple[ClientPattern, ...]:
    return tuple(parse_pattern(text) for text in texts if text.strip())


def _lower(value: bytes) -> str:
    return value.decode("latin-1").lower()


def _never_client(
    config: StreamingConfig, user_agent: bytes | None, headers: Iterable[tuple[bytes, bytes]]
) -> ClientPattern | None:
    patterns = _patterns(tuple(config.never_clients))
    if not patterns:
        return None
    wanted = {pattern.header for pattern in patterns}
    values: dict[bytes, list[str]] = {}
    for name, value in headers:
        name = name.lower()
        if name in wanted and name != b"user-agent":
            values.setdefault(name, []).append(_lower(value))
    if user_agent is not None:
        values[b"user-agent"] = [_lower(user_agent)]
    for pattern in patterns:  # loops, not any(genexpr): that resumes a generator per value
        for value in values.get(pattern.header, ()):
            if pattern.needle in value:
                return pattern
    return None


def _override(value: bytes) -> StreamMode:
    mode = _MODES.get(value.decode("latin-1").strip().lower())
    if mode is None:
        shown = value.decode("latin-1")[:64]
        raise InvalidRequest(
            f"Invalid value {shown!r} for header {MODE_HEADER.decode()}; "
            f"expected one of {', '.join(_MODES)}.",
            param=MODE_HEADER.decode(), code="invalid_header_value",
        )
    return mode


def choose_mode(
    config: StreamingConfig,
    *,
    asked_stream: bool,
    user_agent: bytes | None,
    headers: Iterable[tuple[bytes, bytes]],
    override: bytes | None,
) -> tuple[Delivery, str]:
    """How to answer one chat request, and why (for the debug log).

    ``override`` is the ``x-modelmux-stream-mode`` header, which replaces ``config.mode``. The
    Accept header plays no part: the official OpenAI SDKs stream with ``Accept: application/json``.

    Raises:
        InvalidRequest: ``override`` is not a mode name.
    """
    mode: StreamMode = config.mode
    source = "streaming.mode"
    if override is not None:
        mode, source = _override(override), MODE_HEADER.decode()
    if mode == "always":
        if asked_stream:
            return "standard", f"{source} = always"
        return "standard", f"{source} = always: streaming although the client did not ask"
    if not asked_stream:
        return "never", "the client did not ask for a stream"
    if mode != "auto":
        return mode, f"{source} = {mode}"
    matched = _never_client(config, user_agent, headers)
    if matched is not None:
        return "never", f"auto: never_clients pattern {matched.text!r} matched"
    family = _BROWSER_OR_IDE.search(_lower(user_agent)) if user_agent else None
    if family is not None:
        return "buffered", f"auto: browser or IDE user-agent ({family.group(1)})"
    return "standard", "auto: streaming client"


_NULL = msgspec.Raw(b"null")


def _null() -> msgspec.Raw:
    return _NULL


class _Choice(msgspec.Struct):
    index: int = 0
    delta: dict[str, msgspec.Raw] = msgspec.field(default_factory=dict)
    finish_reason: msgspec.Raw = msgspec.field(default_factory=_null)
    logprobs: msgspec.Raw = msgspec.field(default_factory=_null)

_top = msgspec.json.Decoder(dict[str, msgspec.Raw])
_choices = msgspec.json.Decoder(list[_Choice])
_encode = msgspec.json.Encoder().encode
_DONE_DATA = b"[DONE]"


class _Text(NamedTuple):
    choice: int
    template: dict[str, msgspec.Raw]
    content: bytes  # the JSON string's inner bytes, still escaped


class Coalescer:
    """Buffered mode: text deltas merged up to ``buffer_size`` bytes or ``timeout`` seconds.

    Feed it the provider's SSE-framed chunk bytes (split anywhere); it returns the bytes to send
    now. The first chunk of each choice (the role), tool calls, finish reasons, the usage chunk,
    ``[DONE]``, error events and anything it does not understand flush the pending text and then
    pass through unchanged. Text is measured as JSON-escaped bytes; no text waits longer than
    ``timeout`` once the caller honours ``deadline`` by calling ``tick()``.
    """

    def __init__(self, buffer_size: int, timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.buffer_size = buffer_size
        self.timeout = timeout
        self._clock = clock
        self._decoder = SSEDecoder()
        self._seen: set[int] = set()
        self._pending: dict[int, tuple[dict[str, msgspec.Raw], list[bytes]]] = {}
        self._size = 0
        self._since = 0.0
        self._finished = False

    @property
    def deadline(self) -> float | None:
        """Clock time by which the pending text must go out; None when nothing is pending."""
        return self._since + self.timeout if self._pending else None

    @property
    def finished(self) -> bool:
        """``[DONE]`` or an error event has passed; later input is ignored."""
        return self._finished

    def feed(self, data: bytes) -> bytes:
        """The bytes to send now that ``data`` arrived.

        Raises:
            SSEProtocolError: the chunk stream is not valid SSE.
        """
        out: list[bytes] = []
        self._expire(out)
        for event in self._decoder.feed(data):
            if not self._finished and event.data:
                self._event(event.data, out)
        return b"".join(out)

    def tick(self) -> bytes:
        """The pending text if its deadline has passed, else ``b""``."""
        out: list[bytes] = []
        self._expire(out)
        return b"".join(out)

    def flush(self) -> bytes:
        """All pending text, now."""
        out: list[bytes] = []
        self._flush(out)
        return b"".join(out)

    def close(self) -> bytes:
        """End of the provider's stream: whatever text is still pending."""
        self._decoder.close()
        return self.flush()

    def _expire(self, out: list[bytes]) -> None:
        if self._pending and self._clock() >= self._since + self.timeout:
            self._flush(out)

    def _event(self, payload: bytes, out: list[bytes]) -> None:
        text = self._text(payload) if payload != _DONE_DATA else None
        if text is None:
            self._flush(out)
            out.append(DONE if payload == _DONE_DATA else encode_data(payload))
            self._finished = payload == _DONE_DATA or self._is_error(payload)
            return
        pending = self._pending.get(text.choice)
        if pending is None:
            if not self._pending:
                self._since = self._clock()
            pending = self._pending[text.choice] = (text.template, [])
        pending[1].append(text.content)
        self._size += len(text.content)
        if self._size >= self.buffer_size:
            self._flush(out)

    def _text(self, payload: bytes) -> _Text | None:
        """The text delta ``payload`` carries, or None when it must pass through as is."""
        try:
            top = _top.decode(payload)
            choices = _choices.decode(top["choices"]) if "choices" in top else None
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        if not choices or len(choices) != 1 or "error" in top or top.get("usage", _NULL) != _NULL:
            return None
        choice = choices[0]
        if choice.index not in self._seen:
            self._seen.add(choice.index)  # the role chunk opens each choice, unmerged
            return None
        if choice.finish_reason != _NULL or choice.logprobs != _NULL:
            return None
        content = choice.delta.get("content")
        if content is None:
            return None
        raw = bytes(content)
        if len(raw) < 2 or raw[0] != 0x22:  # not a JSON string
            return None
        for key, value in choice.delta.items():
            if key not in ("content", "role") and value != _NULL:
                return None
        return _Text(choice.index, top, raw[1:-1])

    @staticmethod
    def _is_error(payload: bytes) -> bool:
        if b'"error"' not in payload:
            return False
        try:
            return "error" in _top.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False

    def _flush(self, out: list[bytes]) -> None:
        for index, (template, parts) in self._pending.items():
            content = b"".join(parts)
            if not content:
                continue
            chunk = dict(template)
            chunk["choices"] = msgspec.Raw(
                b'[{"index":' + str(index).encode() + b',"delta":{"content":"' + content
                + b'"},"logprobs":null,"finish_reason":null}]'
            )
            out.append(encode_data(_encode(chunk)))
        self._pending.clear()
        self._size = 0
