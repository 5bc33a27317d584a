"""OpenAI's sampling fields under the camelCase names Gemini and Bedrock Converse share."""

from __future__ import annotations

from typing import Any

from modelmux.errors import InvalidRequest
from modelmux.schemas.openai_chat import ChatCompletionRequest


def sampling(req: ChatCompletionRequest, max_tokens_key: str) -> dict[str, Any]:
    """The output limit (as ``max_tokens_key``), ``temperature``, ``topP`` and
    ``stopSequences`` (empty stops left out) of ``req``.

    Raises:
        InvalidRequest: a max_tokens below 1.
    """
    config: dict[str, Any] = {}
    tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    if tokens is not None:
        if tokens < 1:
            raise InvalidRequest("max_tokens must be at least 1", param="max_tokens")
        config[max_tokens_key] = tokens
    if req.temperature is not None:
        config["temperature"] = req.temperature
    if req.top_p is not None:
        config["topP"] = req.top_p
    if req.stop is not None:
        stops = [s for s in ([req.stop] if isinstance(req.stop, str) else req.stop) if s]
        if stops:
            config["stopSequences"] = stops
    return config
