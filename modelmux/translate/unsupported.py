"""The OpenAI request fields that Gemini, Bedrock Converse and Cohere all refuse.

Each would change the answer if it were silently dropped, so the request is refused naming the
field. What only one vendor refuses stays in its own translator; Claude's door words its own.
"""

from __future__ import annotations

from modelmux.errors import InvalidRequest
from modelmux.schemas.openai_chat import ChatCompletionRequest


def reject_unsupported(req: ChatCompletionRequest, provider: str, vendor: str) -> None:
    """Refuse ``n`` above 1, logprobs, logit_bias, audio output and the legacy functions API.

    Raises:
        InvalidRequest: naming the field; ``provider`` is the configured name, ``vendor`` the API.
    """
    if req.n is not None and req.n != 1:
        raise InvalidRequest(f"n must be 1: provider {provider!r} returns one choice", param="n")
    if req.logprobs or req.top_logprobs:
        raise InvalidRequest(f"logprobs are not available from provider {provider!r}",
                             param="logprobs")
    if req.logit_bias:
        raise InvalidRequest(f"logit_bias is not supported by {vendor}", param="logit_bias")
    if req.audio is not None or (req.modalities and set(req.modalities) - {"text"}):
        raise InvalidRequest("only text output is supported", param="modalities")
    if req.functions is not None or req.function_call is not None:
        raise InvalidRequest("the legacy functions API is not supported; use tools",
                             param="functions" if req.functions is not None else "function_call")
