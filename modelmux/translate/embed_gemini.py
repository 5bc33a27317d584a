"""OpenAI embeddings ⇄ Gemini ``batchEmbedContents``.

Reference: Gemini API "Embeddings": ``POST /v1beta/{model=models/*}:batchEmbedContents`` with
``{"requests": [EmbedContentRequest]}``; each request names ``models/{model}`` (the same model
as the URL), ``content.parts[].text``, and optionally ``taskType`` and
``outputDimensionality``. The answer is ``{"embeddings": [{"values": [...]}]}`` in request
order, with no token counts.
"""

from __future__ import annotations

from typing import Any

import msgspec

from modelmux.translate.embeddings import decode_answer, vector_count_error

_encode = msgspec.json.Encoder().encode


class _Embedding(msgspec.Struct):
    values: list[float]


class _Usage(msgspec.Struct):
    promptTokenCount: int = 0


class _Answer(msgspec.Struct):
    embeddings: list[_Embedding] = []
    usageMetadata: _Usage | None = None


_answer = msgspec.json.Decoder(_Answer)


def gemini_embed_body(texts: list[str], *, model: str, dimensions: int | None,
                      task_type: str | None) -> bytes:
    """The ``batchEmbedContents`` body: one ``EmbedContentRequest`` per text."""
    name = model if model.startswith("models/") else f"models/{model}"
    extra: dict[str, Any] = {}
    if task_type:
        extra["taskType"] = task_type
    if dimensions is not None:
        extra["outputDimensionality"] = dimensions
    return _encode({"requests": [{"model": name, "content": {"parts": [{"text": text}]}, **extra}
                                 for text in texts]})


def gemini_vectors(answer: bytes, provider: str, want: int) -> tuple[list[list[float]], int]:
    """The vectors of a ``batchEmbedContents`` answer, and the prompt tokens it reports (0:
    Gemini reports none for embeddings).

    Raises:
        UpstreamError: the answer is not that shape, or holds other than ``want`` vectors.
    """
    decoded = decode_answer(_answer, answer, provider, "batchEmbedContents answer")
    if len(decoded.embeddings) != want:
        raise vector_count_error(provider, len(decoded.embeddings), want)
    usage = decoded.usageMetadata
    return [e.values for e in decoded.embeddings], usage.promptTokenCount if usage else 0
