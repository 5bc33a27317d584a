"""OpenAI embeddings ⇄ Cohere v2 ``embed``.

Reference: Cohere API "Embed (v2)": ``POST /v2/embed`` with ``model``, ``texts`` (at most 96),
``input_type`` (required by v3 and later models: ``search_document``, ``search_query``,
``classification``, ``clustering``), ``embedding_types`` and, for models that support it,
``output_dimension``. The answer holds ``embeddings.float`` in input order and
``meta.billed_units.input_tokens``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from modelmux.translate.embeddings import decode_answer, vector_count_error

_encode = msgspec.json.Encoder().encode


class _Vectors(msgspec.Struct):
    values: list[list[float]] = msgspec.field(default_factory=list, name="float")


class _Billed(msgspec.Struct):
    input_tokens: int = 0


class _Meta(msgspec.Struct):
    billed_units: _Billed | None = None


class _Answer(msgspec.Struct):
    embeddings: _Vectors
    meta: _Meta | None = None


_answer = msgspec.json.Decoder(_Answer)


def cohere_embed_body(texts: list[str], *, model: str, input_type: str,
                      dimensions: int | None) -> bytes:
    """The ``/v2/embed`` body, asking for float vectors (base64 is made from them here)."""
    body: dict[str, Any] = {"model": model, "texts": texts, "input_type": input_type,
                            "embedding_types": ["float"]}
    if dimensions is not None:
        body["output_dimension"] = dimensions
    return _encode(body)


def cohere_vectors(answer: bytes, provider: str, want: int) -> tuple[list[list[float]], int]:
    """The float vectors of an ``/v2/embed`` answer and its billed input tokens.

    Raises:
        UpstreamError: the answer is not that shape, or holds other than ``want`` vectors.
    """
    decoded = decode_answer(_answer, answer, provider, "embed answer")
    vectors = decoded.embeddings.values
    if len(vectors) != want:
        raise vector_count_error(provider, len(vectors), want)
    billed = decoded.meta.billed_units if decoded.meta else None
    return vectors, billed.input_tokens if billed else 0
