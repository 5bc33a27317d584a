"""Format translators, keyed by wire format: OpenAI chat ⇄ Anthropic Messages.

Pure code: decoded Structs or bytes in, dicts, Structs or chunk payloads out. No I/O, no
provider knowledge (Vertex, Anthropic direct and Bedrock are endpoint profiles over these).
``MessagesStreamTranslator`` is the native twin when built (see ``modelmux._accel``), loaded
on first use because that twin imports ``messages_stream`` from this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelmux import _accel
from modelmux.translate.chat_to_messages import DEFAULT_MAX_TOKENS, chat_to_messages
from modelmux.translate.finish_reason import FINISH_REASONS, finish_reason
from modelmux.translate.messages_to_chat import (
    ANTHROPIC_ERRORS,
    chat_usage,
    messages_to_chat,
    upstream_error,
)

if TYPE_CHECKING:  # both twins share one API; type checkers see it through the pure one
    from modelmux.translate.messages_stream import MessagesStreamTranslator
else:

    def __getattr__(name: str) -> Any:
        """Load the face on first use: the native twin imports this package's pure module."""
        if name != "MessagesStreamTranslator":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        cls = _accel.load("messages_stream", "modelmux.translate.messages_stream")
        globals()[name] = cls.MessagesStreamTranslator
        return cls.MessagesStreamTranslator


__all__ = [
    "ANTHROPIC_ERRORS",
    "DEFAULT_MAX_TOKENS",
    "FINISH_REASONS",
    "MessagesStreamTranslator",
    "chat_to_messages",
    "chat_usage",
    "finish_reason",
    "messages_to_chat",
    "upstream_error",
]
