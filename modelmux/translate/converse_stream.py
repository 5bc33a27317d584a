"""The ConverseStream translator face: the native twin when built, else the pure one.

Callers import ``ConverseStreamTranslator`` from here; ``modelmux.translate._converse_stream_py``
is the readable reference, and ``_speedups/converse_stream.pyx`` extends it with a fused path
for plain text and tool-input deltas (see ``_accel`` for the switches).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmux import _accel

__all__ = ["ConverseStreamTranslator"]

if TYPE_CHECKING:  # both twins share one API; type checkers see it through the pure one
    from modelmux.translate._converse_stream_py import ConverseStreamTranslator
else:
    ConverseStreamTranslator = _accel.load(
        "converse_stream", "modelmux.translate._converse_stream_py").ConverseStreamTranslator
