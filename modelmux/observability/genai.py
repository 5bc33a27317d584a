"""GenAI semantic-convention attributes, read from OpenAI-format requests, answers and chunks.

Sans-I/O and free of OpenTelemetry: the tracer (``otel``) puts these on spans. Names follow
the OpenTelemetry semantic conventions "Generative AI spans" (Development status, the
``gen_ai.provider.name`` generation that replaced ``gen_ai.system`` after 1.36). Answers are
decoded only for ``id``, ``model``, each choice's ``finish_reason`` and ``usage``, in one pass.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import msgspec

from modelmux.providers.base import Tokens, Usage
from modelmux.schemas.openai_chat import ChatCompletionRequest

Attributes = dict[str, str | int | float | bool | list[str]]

OPERATION = "chat"
"""``gen_ai.operation.name`` of ``/v1/chat/completions``."""
EMBEDDINGS = "embeddings"
"""``gen_ai.operation.name`` of ``/v1/embeddings``."""
TEXT_COMPLETION = "text_completion"
"""``gen_ai.operation.name`` of the legacy ``/v1/completions``."""
ROUTE_OPERATIONS = {"/v1/embeddings": EMBEDDINGS, "/v1/completions": TEXT_COMPLETION}
"""Front door route → its ``gen_ai.operation.name``; every other door is a chat."""


def operation_of(route: str) -> str:
    """The ``gen_ai.operation.name`` of a request that came in by ``route``."""
    return ROUTE_OPERATIONS.get(route, OPERATION)

GENAI_PROVIDERS = {"openai_compatible": "openai", "openai": "openai", "azure": "azure.ai.openai",
                   "anthropic": "anthropic", "claude": "anthropic", "vertex": "gcp.vertex_ai",
                   "bedrock": "aws.bedrock"}
"""Provider ``type`` → ``gen_ai.provider.name`` (a well-known value; others pass as they are)."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Choice(msgspec.Struct):
    finish_reason: str | None = None


class _Answer(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    choices: list[_Choice] = []
    usage: Usage | None = None


_answer = msgspec.json.Decoder(_Answer)


def provider_name(provider_type: str) -> str:
    """The ``gen_ai.provider.name`` for a configured provider ``type``."""
    return GENAI_PROVIDERS.get(provider_type, provider_type)


def operation_attributes(operation: str, provider_type: str, model: str) -> Attributes:
    """The attributes every call has: operation, provider and model."""
    return {"gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider_name(provider_type),
            "gen_ai.request.model": model}


def request_attributes(request: ChatCompletionRequest, provider_type: str,
                       model: str) -> Attributes:
    """The attributes known before the call: operation, provider, model and sampling settings."""
    out = operation_attributes(OPERATION, provider_type, model)
    max_tokens = request.max_completion_tokens or request.max_tokens
    if max_tokens is not None:
        out["gen_ai.request.max_tokens"] = max_tokens
    if request.temperature is not None:
        out["gen_ai.request.temperature"] = float(request.temperature)
    if request.top_p is not None:
        out["gen_ai.request.top_p"] = float(request.top_p)
    if request.n is not None and request.n != 1:
        out["gen_ai.request.choice.count"] = request.n
    for name, value in (("frequency_penalty", request.frequency_penalty),
                        ("presence_penalty", request.presence_penalty)):
        if value is not None:
            out[f"gen_ai.request.{name}"] = float(value)
    if request.seed is not None:
        out["gen_ai.request.seed"] = request.seed
    if request.stop is not None:
        out["gen_ai.request.stop_sequences"] = [request.stop] if isinstance(request.stop, str) \
            else list(request.stop)
    return out


def server_attributes(url: str) -> Attributes:
    """``server.address`` and ``server.port`` of an upstream URL (its query never kept)."""
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return {}
    out: Attributes = {}
    if parts.hostname:
        out["server.address"] = parts.hostname
    if port:
        out["server.port"] = port
    return out


def read_answer(body: bytes) -> tuple[Attributes, Tokens | None]:
    """``gen_ai.response.id``, ``.model`` and ``.finish_reasons`` of one OpenAI JSON answer or
    chunk payload (empty when it is not one), and its usage, from one decode."""
    try:
        answer = _answer.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return {}, None
    out: Attributes = {}
    if answer.id:
        out["gen_ai.response.id"] = answer.id
    if answer.model:
        out["gen_ai.response.model"] = answer.model
    reasons = [c.finish_reason for c in answer.choices if c.finish_reason]
    if reasons:
        out["gen_ai.response.finish_reasons"] = reasons
    return out, None if answer.usage is None else answer.usage.tokens


def usage_attributes(tokens: Tokens | None) -> Attributes:
    """``gen_ai.usage.input_tokens`` and ``.output_tokens``; empty when the usage is unknown."""
    if tokens is None:
        return {}
    return {"gen_ai.usage.input_tokens": tokens[0], "gen_ai.usage.output_tokens": tokens[1]}


class StreamReader:
    """Learns the response attributes from the client chunks of one stream as they pass.

    Only the first event (``id``, ``model``) and events that name a ``finish_reason`` are
    decoded; the rest cost one ``in`` scan each. Finish reasons add up across choices.
    """

    __slots__ = ("_reasons", "_seen_first", "attributes")

    def __init__(self) -> None:
        self.attributes: Attributes = {}
        self._reasons: list[str] = []
        self._seen_first = False

    def feed(self, piece: bytes) -> None:
        """Look at one SSE-framed piece (one or more ``data:`` events)."""
        if self._seen_first and b'"finish_reason":"' not in piece \
                and b'"finish_reason": "' not in piece:
            return
        for line in piece.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if not payload.startswith(b"{"):
                continue
            found, _ = read_answer(payload)
            if not self._seen_first:
                self._seen_first = True
                for key in ("gen_ai.response.id", "gen_ai.response.model"):
                    if key in found:
                        self.attributes[key] = found[key]
            reasons = found.get("gen_ai.response.finish_reasons")
            if isinstance(reasons, list):
                self._reasons.extend(reasons)
                self.attributes["gen_ai.response.finish_reasons"] = list(self._reasons)
