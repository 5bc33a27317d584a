"""Which shipped tokenizer estimates a model's prompt, and the tokens its chat format adds
around the text: data matched on the model name. No I/O; loading is ``tokenizer_files``.

The frame sizes are approximations: a chat template's exact tokens depend on the model and on
the serving software, so they are what the family's documented format costs for a plain text
message, not a rendering of the template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TokenFamily:
    """A tokenizer, named as the ``x-modelmux-token-count`` header names it, and its chat frame.

    ``per_message`` tokens frame each message (the system prompt too when ``frames_system``),
    ``reply`` start the assistant's turn; ``tools_prompt`` is what a request with tools adds
    (``forced_tools_prompt`` when ``tool_choice`` is ``any`` or a named tool).
    """

    tokenizer: str
    per_message: int
    reply: int
    frames_system: bool = True
    tools_prompt: int = 0
    forced_tools_prompt: int = 0

    def overhead(self, messages: int, system: bool, tools: bool, forced: bool) -> int:
        """The frame's tokens for ``messages`` messages (the system prompt, when ``system``,
        counted among them) and, when ``tools``, the tools prompt."""
        framed = messages - (1 if system and not self.frames_system else 0)
        added = (self.forced_tools_prompt if forced else self.tools_prompt) if tools else 0
        return self.per_message * framed + self.reply + added


O200K = TokenFamily("o200k_base", per_message=4, reply=3)
"""OpenAI's chat format, from OpenAI's cookbook "How to count tokens with tiktoken": 3 tokens
around a message and 1 for its role, 3 priming the reply."""

CLAUDE_LEGACY = TokenFamily("claude-legacy", per_message=4, reply=4, frames_system=False,
                       tools_prompt=346, forced_tools_prompt=313)
"""The legacy Claude tokenizer with Claude's turn markers as it splits them (``\\n\\nHuman:``
and ``\\n\\nAssistant:``, 4 tokens each; the system prompt goes first, unframed), plus the
tools system prompt Anthropic's pricing page lists for Claude 4 models (346 tokens with
``tool_choice`` auto or none, 313 with any or a named tool)."""

CHAT_TEMPLATE = TokenFamily("tokenizer.json", per_message=5, reply=3)
"""A configured Hugging Face tokenizer: the frame of the common open-weight templates (Llama
3's header tokens, ChatML's ``<|im_start|>role\\n ... <|im_end|>\\n``), about 5 tokens a
message and 3 opening the reply. The header names the file instead of ``tokenizer.json``."""

O200K_MODELS = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4-mini",
                "gpt-oss")
"""Model names (and their dated or suffixed variants) that OpenAI tokenizes with o200k_base."""

MODEL_FAMILIES: tuple[tuple[str, TokenFamily], ...] = (
    (rf"(?:{'|'.join(map(re.escape, O200K_MODELS))})(?:-.*)?", O200K),
    (r"(?:.*\.)?claude-.*", CLAUDE_LEGACY),
)
"""Patterns over a lower-cased model name without its ``vendor/`` prefix, first match wins;
``(?:.*\\.)?`` admits Bedrock's ``anthropic.`` and ``us.anthropic.`` ids."""

_COMPILED = tuple((re.compile(pattern), family) for pattern, family in MODEL_FAMILIES)


def family_of(model: str) -> TokenFamily | None:
    """The shipped tokenizer family of ``model`` (a ``vendor/`` prefix ignored), if any."""
    name = model.rsplit("/", 1)[-1].lower()
    for pattern, family in _COMPILED:
        if pattern.fullmatch(name):
            return family
    return None
