"""msgspec Structs for Google's Gemini ``generateContent`` answers (AI Studio and Vertex).

Reference: Gemini API "Generating content" (``GenerateContentResponse``: candidates, content
parts, ``finishReason``, ``promptFeedback``, ``usageMetadata``); ``streamGenerateContent`` with
``alt=sse`` sends one such object per SSE ``data``. Requests are built as plain dicts by
``translate.chat_to_gemini``. Unknown fields are ignored, so new API fields decode.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct


class FunctionCall(Struct, rename="camel"):
    name: str
    args: msgspec.Raw = msgspec.Raw(b"{}")
    id: str | None = None


class Part(Struct, rename="camel"):
    text: str | None = None
    thought: bool | None = None
    function_call: FunctionCall | None = None


class Content(Struct, rename="camel"):
    parts: list[Part] = []
    role: str | None = None


class Candidate(Struct, rename="camel"):
    content: Content | None = None
    finish_reason: str | None = None
    index: int = 0


class PromptFeedback(Struct, rename="camel"):
    block_reason: str | None = None


class UsageMetadata(Struct, rename="camel"):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    thoughts_token_count: int = 0
    cached_content_token_count: int = 0
    total_token_count: int = 0


class Error(Struct):
    code: int = 500
    message: str = ""
    status: str = ""


class GenerateContentResponse(Struct, rename="camel"):
    """One answer, or one chunk of a streamed answer; ``error`` when the stream failed."""

    candidates: list[Candidate] = []
    prompt_feedback: PromptFeedback | None = None
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None
    error: Error | None = None


response_decoder: msgspec.json.Decoder[GenerateContentResponse] = msgspec.json.Decoder(
    GenerateContentResponse)

Body = dict[str, Any]
