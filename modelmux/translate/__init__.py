"""Format translators, keyed by wire format: OpenAI chat ⇄ Anthropic Messages.

Pure code: decoded Structs or bytes in, dicts, Structs or chunk payloads out. No I/O, no
provider knowledge (Vertex, Anthropic direct and Bedrock are endpoint profiles over these).
"""

from __future__ import annotations

from modelmux.translate.chat_to_messages import DEFAULT_MAX_TOKENS, chat_to_messages
from modelmux.translate.finish_reason import FINISH_REASONS, finish_reason
from modelmux.translate.messages_stream import MessagesStreamTranslator
from modelmux.translate.messages_to_chat import (
    ANTHROPIC_ERRORS,
    chat_usage,
    messages_to_chat,
    upstream_error,
)

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
