"""OpenAI embeddings ⇄ Vertex AI text embeddings (``publishers/google`` ``:predict``).

Reference: Vertex AI "Get text embeddings" / "Text embeddings API": ``POST .../publishers/
google/models/{model}:predict`` with ``{"instances": [{"content", "task_type"?}],
"parameters": {"outputDimensionality"?}}``; the answer's ``predictions[].embeddings`` hold
``values`` and ``statistics.token_count``, in instance order. ``gemini-embedding-001`` takes
one instance a request, the ``text-embedding-*`` models up to 250.
"""

from __future__ import annotations

from typing import Any

import msgspec

from modelmux.translate.embeddings import decode_answer, vector_count_error

_encode = msgspec.json.Encoder().encode

VERTEX_EMBED_BATCH = 250
"""The most instances one ``:predict`` request takes (``text-embedding-005`` and kin)."""


def vertex_embed_batch(model: str, configured: int) -> int:
    """Instances per request for ``model``: 1 for the Gemini embedding models, else the
    configured size."""
    return 1 if model.startswith("gemini-embedding") else configured


class _Statistics(msgspec.Struct):
    token_count: float = 0  # Vertex sends it as a number that may be written 12.0


class _Embeddings(msgspec.Struct):
    values: list[float]
    statistics: _Statistics | None = None


class _Prediction(msgspec.Struct):
    embeddings: _Embeddings


class _Answer(msgspec.Struct):
    predictions: list[_Prediction] = []


_answer = msgspec.json.Decoder(_Answer)


def vertex_embed_body(texts: list[str], *, dimensions: int | None,
                      task_type: str | None) -> bytes:
    """The ``:predict`` body: one instance per text."""
    instances: list[dict[str, Any]] = [
        {"content": text, "task_type": task_type} if task_type else {"content": text}
        for text in texts]
    body: dict[str, Any] = {"instances": instances}
    if dimensions is not None:
        body["parameters"] = {"outputDimensionality": dimensions}
    return _encode(body)


def vertex_vectors(answer: bytes, provider: str, want: int) -> tuple[list[list[float]], int]:
    """The vectors of a ``:predict`` answer and the tokens its statistics count.

    Raises:
        UpstreamError: the answer is not that shape, or holds other than ``want`` vectors.
    """
    decoded = decode_answer(_answer, answer, provider, "embeddings prediction")
    if len(decoded.predictions) != want:
        raise vector_count_error(provider, len(decoded.predictions), want)
    tokens = 0
    vectors = []
    for prediction in decoded.predictions:
        vectors.append(prediction.embeddings.values)
        stats = prediction.embeddings.statistics
        tokens += int(stats.token_count) if stats is not None else 0
    return vectors, tokens
