"""Claude on Bedrock spoken natively: the client's Messages body through InvokeModel.

Reference: Amazon Bedrock User Guide, "Anthropic Claude Messages API > Request and Response"
(the InvokeModel body is the Messages body without ``model``, with ``"anthropic_version":
"bedrock-2023-05-31"`` and the betas as the list ``anthropic_beta``); API Reference
"InvokeModel" (``POST /model/{modelId}/invoke``), "InvokeModelWithResponseStream"
(``.../invoke-with-response-stream``: an event stream whose ``chunk`` events carry a
``PayloadPart``, ``{"bytes": base64}``, here one Anthropic stream event each, and whose
exceptions are ``:message-type exception`` messages) and "CountTokens" (``POST
/model/{modelId}/count-tokens`` with ``{"input": {"invokeModel": {"body": base64}}}``,
answered ``{"inputTokens": N}``). Bedrock refuses ``model`` and ``stream`` in the body as
extraneous keys; every other member of the client's body keeps its bytes. The stream relay is
``invoke_stream``'s (native when built).
"""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Protocol

import msgspec

from modelmux import _accel
from modelmux.errors import UpstreamError
from modelmux.providers.claude_native import MessagesCall, message_usage, with_model

if TYPE_CHECKING:  # both twins share one API; type checkers see it through the pure one
    from modelmux.errors import Headers
    from modelmux.providers.base import CallStats
    from modelmux.providers.invoke_stream import InvokeStreamRelay
    from modelmux.providers.transport import ProviderClient
else:
    InvokeStreamRelay = _accel.load("invoke_stream",
                                    "modelmux.providers.invoke_stream").InvokeStreamRelay

__all__ = ["BEDROCK_ANTHROPIC_VERSION", "BedrockClaude", "InvokeStreamRelay", "betas", "complete",
           "count_tokens", "invoke_body", "is_claude"]

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
_CLAUDE = re.compile(r"(?:arn:aws[a-z-]*:bedrock:[a-z0-9-]*:[0-9]*:"
                     r"(?:foundation-model|inference-profile)/)?(?:[a-z]{2,6}\.)?anthropic\.")
"""A Claude model id, bare (``anthropic.claude-...``) or an inference profile (``us.``,
``eu.``, ``apac.``, ``global.`` ...), or the ARN of either. An application inference
profile's ARN does not name its model: the provider's ``claude_models`` marks those."""
_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encode = msgspec.json.Encoder().encode


class _Count(msgspec.Struct):
    inputTokens: int


_count = msgspec.json.Decoder(_Count)


class BedrockClaude(Protocol):
    """What this module reads of a ``bedrock.BedrockProvider``."""

    name: str
    headers: Headers
    upstream: ProviderClient

    def url(self, model: str, operation: str) -> str: ...

    async def signed(self, url: str, headers: Headers, body: bytes) -> Headers: ...


def is_claude(model: str) -> bool:
    """True for a Bedrock model id (or inference profile id) of an Anthropic model."""
    return _CLAUDE.match(model) is not None


def betas(forward: Headers) -> list[str]:
    """The beta names of the client's ``anthropic-beta`` headers (comma-separated lists)."""
    return [name.strip() for key, value in forward if key == b"anthropic-beta"
            for name in value.decode("latin-1").split(",") if name.strip()]


def invoke_body(body: bytes, forward: Headers, *, need_max_tokens: bool = False) -> bytes:
    """The InvokeModel body for a Messages ``body``: no ``model`` or ``stream``, Bedrock's
    ``anthropic_version``, the header betas appended to ``anthropic_beta``; every other member
    as sent. ``need_max_tokens`` adds ``max_tokens: 1`` when absent (a count_tokens body: the
    InvokeModel body requires it, and it does not change the input count).

    Raises:
        msgspec.DecodeError: ``body`` is not a JSON object (the door decoded it already).
    """
    members = _fields.decode(body)
    members.pop("model", None)
    members.pop("stream", None)  # the operation says it; Bedrock refuses the key
    members["anthropic_version"] = msgspec.Raw(_encode(BEDROCK_ANTHROPIC_VERSION))
    wanted = betas(forward)
    if wanted:
        held = members.get("anthropic_beta")
        try:
            kept = msgspec.json.decode(bytes(held), type=list[str]) if held is not None else []
        except (msgspec.DecodeError, msgspec.ValidationError):
            kept = []
        members["anthropic_beta"] = msgspec.Raw(_encode(kept + [b for b in wanted
                                                                  if b not in kept]))
    if need_max_tokens and "max_tokens" not in members:
        members["max_tokens"] = msgspec.Raw(b"1")
    return _encode(members)


async def complete(provider: BedrockClaude, call: MessagesCall) -> bytes:
    """The Message InvokeModel answers for ``call``, with the client's model name."""
    body = invoke_body(call.messages_body, call.forward)
    url = provider.url(call.model, "invoke")
    headers = await provider.signed(url, [*provider.headers, (b"accept", b"application/json")],
                                    body)
    answer = await provider.upstream.fetch(url, headers, body, call.stats)
    counted = message_usage(answer)
    if counted is not None:
        call.stats.tokens, call.stats.cache = counted
    return with_model(answer, call.public_model)


async def count_tokens(provider: BedrockClaude, body: bytes, *, model: str, forward: Headers,
                       stats: CallStats) -> bytes:
    """``{"input_tokens": N}`` from Bedrock's CountTokens for a count_tokens ``body``.

    Raises:
        ModelMuxError: Bedrock's error (some models have no CountTokens), or a bad answer.
    """
    invoke = invoke_body(body, forward, need_max_tokens=True)
    sent = _encode({"input": {"invokeModel": {"body": base64.b64encode(invoke).decode()}}})
    url = provider.url(model, "count-tokens")
    headers = await provider.signed(url, [*provider.headers, (b"accept", b"application/json")],
                                    sent)
    answer = await provider.upstream.fetch(url, headers, sent, stats)
    try:
        tokens = _count.decode(answer).inputTokens
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise UpstreamError(f"provider {provider.name!r} sent an unreadable token count",
                            code="upstream_protocol_error") from None
    return _encode({"input_tokens": tokens})
