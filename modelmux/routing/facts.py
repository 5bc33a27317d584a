"""Request facts for routing rules and strategies, taken from a decoded request (chat,
embeddings or legacy completions).

``request_facts`` builds the mapping ``rules.Rule.matches`` reads (names in ``rules.FACTS``,
plus ``headers`` and ``metadata``). The prompt token count is an estimate from the body size
(4 bytes a token), good enough to route on and to reserve tokens-per-minute with.
``cost_sensitive`` comes from the ``x-modelmux-cost-sensitive`` request header;
``deterministic`` is true when ``temperature`` is 0 or a ``seed`` is set. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable

from modelmux.errors import InvalidRequest
from modelmux.schemas.openai_chat import ChatCompletionRequest, ImagePart
from modelmux.schemas.openai_completions import CompletionRequest
from modelmux.schemas.openai_embeddings import EmbeddingRequest

BYTES_PER_TOKEN = 4
DEFAULT_OUTPUT_TOKENS = 256
"""The output size assumed for pricing and reservations when ``max_tokens`` is not given."""
COST_SENSITIVE_HEADER = b"x-modelmux-cost-sensitive"
_FLAGS = {"true": True, "false": False, "1": True, "0": False}


def estimate_prompt_tokens(body: bytes) -> int:
    """A rough prompt size: request body bytes / 4 (at least 1)."""
    tokens = len(body) // BYTES_PER_TOKEN
    return tokens if tokens > 0 else 1


def _has_images(request: ChatCompletionRequest) -> bool:
    for message in request.messages:
        content = getattr(message, "content", None)
        if isinstance(content, list) and any(isinstance(p, ImagePart) for p in content):
            return True
    return False


def _flag(header: str, value: str) -> bool:
    """A boolean request header: ``true``/``1`` or ``false``/``0``, any case.

    Raises:
        InvalidRequest: any other value.
    """
    flag = _FLAGS.get(value.strip().lower())
    if flag is None:
        raise InvalidRequest(
            f"Invalid value {value[:64]!r} for header {header}; expected one of "
            f"{', '.join(_FLAGS)}.", param=header, code="invalid_header_value")
    return flag


def max_tokens_of(request: ChatCompletionRequest | EmbeddingRequest | CompletionRequest
                  ) -> int | None:
    """``max_completion_tokens`` or, failing that, ``max_tokens``; 0 for embeddings."""
    if type(request) is ChatCompletionRequest:  # the usual case, without ``isinstance`` on
        return request.max_completion_tokens or request.max_tokens  # a Struct class (slow)
    if isinstance(request, EmbeddingRequest):
        return 0
    return request.max_tokens


def expected_tokens(request: ChatCompletionRequest | EmbeddingRequest | CompletionRequest,
                    body: bytes) -> int:
    """``estimate_prompt_tokens`` plus the output (``max_tokens_of``, else
    ``DEFAULT_OUTPUT_TOKENS``): what a request reserves of a tokens-per-minute limit. Written
    out in one function: the admit stage asks it on every limited request."""
    prompt = len(body) // BYTES_PER_TOKEN
    output = (request.max_completion_tokens or request.max_tokens
              if type(request) is ChatCompletionRequest else max_tokens_of(request))
    return (prompt if prompt > 0 else 1) + (DEFAULT_OUTPUT_TOKENS if output is None else output)


def request_facts(request: ChatCompletionRequest, body: bytes,
                  headers: Iterable[tuple[bytes, bytes]], key: str | None = None
                  ) -> dict[str, object]:
    """The facts of one request; absent ones are left out (rules read them as absent).

    ``key`` is the name of the client's API key; ModelMux has no inbound keys yet, so callers
    pass None and ``key`` is always absent.

    Raises:
        InvalidRequest: an ``x-modelmux-cost-sensitive`` header that is not a boolean.
    """
    facts = input_facts(request, body, headers, key)
    facts.update(has_tools=bool(request.tools or request.functions),
                 has_images=_has_images(request), metadata=dict(request.metadata or {}))
    limit = max_tokens_of(request)
    if limit is not None:
        facts["max_tokens"] = limit
    temperature, seed = request.temperature, request.seed
    if temperature is not None:
        facts["temperature"] = temperature
    if seed is not None:
        facts["seed"] = seed
    facts["deterministic"] = temperature == 0 or seed is not None
    return facts


def input_facts(request: ChatCompletionRequest | EmbeddingRequest | CompletionRequest,
                body: bytes, headers: Iterable[tuple[bytes, bytes]], key: str | None = None
                ) -> dict[str, object]:
    """The facts any request has (embeddings and legacy completions have only these): no
    tools, images or metadata.

    Raises:
        InvalidRequest: an ``x-modelmux-cost-sensitive`` header that is not a boolean.
    """
    sent = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in headers}
    facts: dict[str, object] = {
        "model": request.model,
        "stream": bool(getattr(request, "stream", False)),
        "prompt_tokens": estimate_prompt_tokens(body),
        "has_tools": False,
        "has_images": False,
        "headers": sent,
        "metadata": {},
    }
    if request.user is not None:
        facts["user"] = request.user
    if key is not None:
        facts["key"] = key
    header = COST_SENSITIVE_HEADER.decode()
    if header in sent:
        facts["cost_sensitive"] = _flag(header, sent[header])
    return facts
