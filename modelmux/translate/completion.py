"""The one-choice OpenAI ChatCompletion that every vendor's whole answer becomes.

The vendor translators (Bedrock Converse, Gemini, Cohere) read their own answer bodies; this
writes the part they share, so content and tool calls come out the same way for each.
"""

from __future__ import annotations

from modelmux.schemas.openai_chat import ChatCompletion, Choice, ResponseMessage, ToolCall, Usage


def one_choice(completion_id: str, created: int, model: str, texts: list[str],
               calls: list[ToolCall], finish_reason: str, usage: Usage | None) -> ChatCompletion:
    """The answer as one choice: ``texts`` joined, and no content at all (``null``, as OpenAI
    sends it) when the answer is only tool calls."""
    content = "".join(texts) if texts or not calls else None
    return ChatCompletion(
        id=completion_id, created=created, model=model,
        choices=[Choice(index=0, finish_reason=finish_reason,
                        message=ResponseMessage(content=content, tool_calls=calls or None))],
        usage=usage)
