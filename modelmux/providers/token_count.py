"""count_tokens through a provider's own counting endpoint: the request bodies and the answers.

References: Gemini API "Counting tokens" (``models.countTokens`` with ``{"generateContentRequest":
{...}}``, answered ``{"totalTokens"}``); Vertex AI ``publishers.models.countTokens`` (``contents``,
``systemInstruction``, ``tools`` at the top, answered ``{"totalTokens",
"totalBillableCharacters"}``); Cohere "Tokenize" (``POST /v1/tokenize`` ``{"text", "model"}``,
text of 1 to 65536 characters, answered ``{"tokens", "token_strings"}``); vLLM's ``POST
/tokenize`` (``{"model", "messages"}``: the chat template applied, answered ``{"count",
"tokens", "max_model_len"}``); llama.cpp server's ``POST /apply-template`` (``{"messages"}``,
answered ``{"prompt"}``) and ``POST /tokenize`` (``{"content", "add_special"}``, answered
``{"tokens"}``). Pure: no I/O; each provider sends the bodies with its own upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from modelmux.errors import UpstreamError
from modelmux.schemas.openai_chat import ChatCompletionRequest

NATIVE = "native"
"""The provider counted the request as the model sees it."""
TEXT_ONLY = "native; text"
"""The provider's tokenizer counted the prompt's text; turn markup is not counted and each
image or document is an estimate."""
UNAVAILABLE_STATUSES = frozenset({404, 405, 501})
"""Upstream statuses that mean "no such endpoint here": the door estimates instead."""
COHERE_MAX_CHARS = 65536
COHERE_MAX_PIECES = 16
"""Tokenize calls one count may make (about a million characters); longer prompts are
estimated."""
GEMINI_COUNTED = ("contents", "systemInstruction", "tools")
"""The members of a Gemini request that countTokens counts (generation settings add nothing)."""

_encode = msgspec.json.Encoder().encode
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CountInput:
    """One count_tokens request in the shapes counting endpoints take: the internal call (what
    a Gemini body is made from), its OpenAI ``messages`` and ``tools`` as JSON values, and the
    prompt's texts with the tokens estimated for its images and documents."""

    chat: ChatCompletionRequest
    messages: list[Any]
    tools: list[Any] | None
    texts: list[str]
    media_tokens: int


@dataclass(frozen=True, slots=True)
class Counted:
    """A count and how it was made (the ``x-modelmux-token-count`` value)."""

    tokens: int
    how: str


class CountUnavailable(UpstreamError):
    """The provider cannot count this request (no endpoint, HTTP 404/405/501, or too long):
    the door estimates and names ``reason`` in its header."""

    code = "count_unavailable"

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"provider {provider!r} cannot count tokens ({reason})")
        self.reason = reason


class _Total(msgspec.Struct):
    totalTokens: int = 0  # proto3 JSON leaves a zero out


class _Tokens(msgspec.Struct):
    tokens: list[Any]


class _VllmCount(msgspec.Struct):
    count: int


class _Prompt(msgspec.Struct):
    prompt: str


def gemini_count_body(gemini: dict[str, Any], model: str) -> bytes:
    """AI Studio's countTokens body for a Gemini request: the whole request, so the system
    instruction and tools are counted too."""
    request = {"model": f"models/{model}", **_counted(gemini)}
    return _encode({"generateContentRequest": request})


def vertex_count_body(gemini: dict[str, Any]) -> bytes:
    """Vertex's countTokens body: the counted members at the top (it refuses the others)."""
    return _encode(_counted(gemini))


def _counted(gemini: dict[str, Any]) -> dict[str, Any]:
    return {name: gemini[name] for name in GEMINI_COUNTED if name in gemini}


def total_tokens(answer: bytes, provider: str) -> int:
    """``totalTokens`` of a countTokens answer.

    Raises:
        UpstreamError: the answer is not a countTokens answer.
    """
    return _read(answer, _Total, provider).totalTokens


def cohere_pieces(texts: list[str], provider: str) -> list[str]:
    """The prompt's texts joined by newlines, cut into pieces Cohere's tokenize takes (at a
    space where one is near the cut, so few words are split); none for an empty prompt.

    Raises:
        CountUnavailable: the prompt needs more than ``COHERE_MAX_PIECES`` pieces.
    """
    text = "\n".join(piece for piece in texts if piece)
    pieces: list[str] = []
    while text:
        if len(pieces) == COHERE_MAX_PIECES:
            raise CountUnavailable(provider, "too-long")
        cut = len(text)
        if cut > COHERE_MAX_CHARS:
            space = text.rfind(" ", COHERE_MAX_CHARS // 2, COHERE_MAX_CHARS)
            cut = space if space > 0 else COHERE_MAX_CHARS
        pieces.append(text[:cut])
        text = text[cut:]
    return pieces


def cohere_tokenize_body(text: str, model: str) -> bytes:
    return _encode({"text": text, "model": model})


def token_list_length(answer: bytes, provider: str) -> int:
    """How many ``tokens`` a tokenize answer lists (Cohere's and llama.cpp's).

    Raises:
        UpstreamError: the answer has no ``tokens`` list.
    """
    return len(_read(answer, _Tokens, provider).tokens)


def _chat_turns(prompt: CountInput, **fields: Any) -> bytes:
    """``fields`` with the chat turns and, when there are any, the tools, as chat takes them."""
    body: dict[str, Any] = {**fields, "messages": prompt.messages}
    if prompt.tools:
        body["tools"] = prompt.tools
    return _encode(body)


def vllm_body(model: str, prompt: CountInput) -> bytes:
    """vLLM's chat tokenize body: the chat template is applied with the generation prompt."""
    return _chat_turns(prompt, model=model)


def vllm_count(answer: bytes, provider: str) -> int:
    """``count`` of a vLLM tokenize answer.

    Raises:
        UpstreamError: the answer has no ``count``.
    """
    return _read(answer, _VllmCount, provider).count


def template_body(prompt: CountInput) -> bytes:
    """llama.cpp's ``/apply-template`` body: the chat turns (and tools) as chat takes them."""
    return _chat_turns(prompt)


def template_prompt(answer: bytes, provider: str) -> str:
    """The formatted prompt of an ``/apply-template`` answer.

    Raises:
        UpstreamError: the answer has no ``prompt``.
    """
    return _read(answer, _Prompt, provider).prompt


def llamacpp_tokenize_body(text: str) -> bytes:
    """llama.cpp's ``/tokenize`` body for a formatted prompt, tokenized as its chat path does:
    special tokens added and parsed."""
    return _encode({"content": text, "add_special": True, "parse_special": True})


def _read(answer: bytes, kind: type[T], provider: str) -> T:
    try:
        return msgspec.json.decode(answer, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UpstreamError(f"provider {provider!r} sent a token count that cannot be read: "
                            f"{exc}", code="upstream_protocol_error") from None
