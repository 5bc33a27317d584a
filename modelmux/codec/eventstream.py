"""The AWS event stream face: the native decoder when built, else ``modelmux.codec._eventstream_py``.

Callers import ``EventStreamDecoder``, ``EventStreamError``, ``Message`` and the encoders from
here and never pick a twin themselves; ``MODELMUX_PURE_PYTHON`` / ``MODELMUX_REQUIRE_NATIVE``
steer the choice (see ``_accel``). Only the decoder has a native twin; the error, the message
class and the encoders are the pure module's, shared by both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmux import _accel
from modelmux.codec._eventstream_py import (
    MAX_MESSAGE,
    EventStreamError,
    HeaderValue,
    Message,
    encode_headers,
    encode_message,
    parse_headers,
)

__all__ = [
    "MAX_MESSAGE",
    "EventStreamDecoder",
    "EventStreamError",
    "HeaderValue",
    "Message",
    "encode_headers",
    "encode_message",
    "parse_headers",
]

if TYPE_CHECKING:  # both twins share one API; type checkers see it through the pure one
    from modelmux.codec._eventstream_py import EventStreamDecoder
else:
    EventStreamDecoder = _accel.load("eventstream", "modelmux.codec._eventstream_py").EventStreamDecoder
