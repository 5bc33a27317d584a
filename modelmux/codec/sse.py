"""The SSE codec face: the native twin when built, else ``modelmux.codec._sse_py``.

Callers import ``SSEDecoder``, ``Event``, ``SSEProtocolError``, ``encode_event``,
``encode_data``, ``encode_comment`` and ``DONE`` from here and never pick a twin themselves;
``MODELMUX_PURE_PYTHON`` / ``MODELMUX_REQUIRE_NATIVE`` steer the choice (see ``_accel``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmux import _accel
from modelmux.codec.sse_common import Event, SSEProtocolError

__all__ = [
    "DONE",
    "Event",
    "SSEDecoder",
    "SSEProtocolError",
    "encode_comment",
    "encode_data",
    "encode_event",
]

_impl = _accel.load("sse", "modelmux.codec._sse_py")

if TYPE_CHECKING:  # both twins share one API; type checkers see it through the pure one
    from modelmux.codec._sse_py import DONE, SSEDecoder, encode_comment, encode_data, encode_event
else:
    DONE = _impl.DONE
    SSEDecoder = _impl.SSEDecoder
    encode_comment = _impl.encode_comment
    encode_data = _impl.encode_data
    encode_event = _impl.encode_event
