"""OpenAI embeddings requests as Bedrock InvokeModel bodies, and the answers back, sans I/O.

Reference: Amazon Bedrock User Guide, "Amazon Titan Embeddings G1 - Text" (V1 and V2: one
``inputText`` per request, ``dimensions`` 256/512/1024 and ``normalize`` on V2; answer
``embedding`` and ``inputTextTokenCount``) and "Cohere Embed v3" (``texts`` (at most 96),
``input_type``; answer ``embeddings``, token count in the ``X-Amzn-Bedrock-Input-Token-Count``
header). The texts of the request, the client's ``input_type`` and OpenAI's answer are
``translate.embeddings``', shared with the other vendors.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from modelmux.errors import InvalidRequest, UpstreamError
from modelmux.schemas.openai_embeddings import EmbeddingRequest
from modelmux.translate.embeddings import text_inputs, vector_count_error

EmbedFamily = Literal["titan", "cohere"]
COHERE_BATCH = 96
"""Cohere Embed on Bedrock takes at most 96 texts a request."""

_encode = msgspec.json.Encoder().encode


class _Titan(msgspec.Struct, rename="camel"):
    embedding: list[float]
    input_text_token_count: int = 0


class _Cohere(msgspec.Struct):
    embeddings: list[list[float]]


_titan = msgspec.json.Decoder(_Titan)
_cohere = msgspec.json.Decoder(_Cohere)


def embed_family(model: str) -> EmbedFamily | None:
    """Which body a model id takes (a region-prefixed inference profile id included)."""
    if "titan-embed" in model:
        return "titan"
    if "cohere.embed" in model:
        return "cohere"
    return None


def texts_of(request: EmbeddingRequest, model: str, provider: str) -> tuple[EmbedFamily, list[str]]:
    """The body family and the input texts.

    Raises:
        InvalidRequest: the model is no Titan or Cohere embed model, the input is token arrays,
            or ``dimensions`` is given for a Cohere model.
    """
    family = embed_family(model)
    if family is None:
        raise InvalidRequest(f"provider {provider!r} (bedrock) embeds with Titan "
                             "(amazon.titan-embed-*) or Cohere (cohere.embed-*) models only, "
                             f"not {model!r}", param="model", code="embeddings_not_supported")
    texts = text_inputs(request, provider, "bedrock")
    if family == "cohere" and request.dimensions is not None:
        raise InvalidRequest("dimensions is not supported by Cohere embed models on Bedrock",
                             param="dimensions")
    return family, texts


def titan_body(text: str, dimensions: int | None) -> bytes:
    body: dict[str, object] = {"inputText": text}
    if dimensions is not None:
        body["dimensions"] = dimensions
    return _encode(body)


def cohere_body(texts: list[str], input_type: str) -> bytes:
    return _encode({"texts": texts, "input_type": input_type})


def _unreadable(provider: str, exc: Exception) -> UpstreamError:
    return UpstreamError(f"provider {provider!r} sent an unreadable embeddings answer: {exc}",
                         code="upstream_protocol_error")


def titan_answer(body: bytes, provider: str) -> tuple[list[float], int]:
    """(the vector, its input tokens). Raises: UpstreamError: not a Titan answer."""
    try:
        answer = _titan.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _unreadable(provider, exc) from None
    return answer.embedding, answer.input_text_token_count


def cohere_answer(body: bytes, provider: str, count: int) -> list[list[float]]:
    """The ``count`` vectors. Raises: UpstreamError: not a Cohere answer, or a wrong count."""
    try:
        vectors = _cohere.decode(body).embeddings
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _unreadable(provider, exc) from None
    if len(vectors) != count:
        raise vector_count_error(provider, len(vectors), count)
    return vectors
