"""OpenAI's legacy "Completions > Create completion" request, the fields ModelMux reads.

Everything else (``suffix``, ``echo``, ``logprobs``, ``best_of``, vendor extras such as vLLM's)
travels on to the upstream in the client's own bytes.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from modelmux.schemas.openai_chat import StreamOptions


class CompletionRequest(msgspec.Struct, frozen=True):
    """``prompt`` is a string, a list of strings, a token array or a list of token arrays."""

    model: str
    prompt: str | list[str | int | list[int]]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=0)] | None = None
    user: str | None = None


completion_decoder = msgspec.json.Decoder(CompletionRequest)
