"""Anthropic ``stop_reason`` → OpenAI ``finish_reason``, as a table.

Reference: Anthropic docs "Handling stop reasons"; OpenAI "The chat completion object",
``choices[].finish_reason``. Used by both the non-streaming and the streaming translator.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

FINISH_REASONS: Mapping[str, str] = MappingProxyType(
    {
        "end_turn": "stop",
        "stop_sequence": "stop",
        "max_tokens": "length",
        "model_context_window_exceeded": "length",
        "tool_use": "tool_calls",
        "refusal": "content_filter",
        # A server-tool loop paused; the client sees a finished turn it can continue.
        "pause_turn": "stop",
    }
)

DEFAULT_FINISH_REASON = "stop"
"""What an unknown or missing ``stop_reason`` becomes (the API adds values over time)."""


def finish_reason(stop_reason: str | None) -> str:
    """The OpenAI finish_reason for an Anthropic stop_reason; unknown values map to ``stop``."""
    if stop_reason is None:
        return DEFAULT_FINISH_REASON
    return FINISH_REASONS.get(stop_reason, DEFAULT_FINISH_REASON)
