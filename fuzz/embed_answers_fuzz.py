"""Fuzz target for the vendor embeddings answer readers (Gemini ``batchEmbedContents``, Vertex
``:predict``, Cohere ``/v2/embed``).

Invariant: for any answer body and expected count, a reader returns exactly that many float
vectors and a token count of 0 or more, or raises ``UpstreamError``; nothing else escapes, and
what it returns makes a valid OpenAI answer in float and base64. Runs under atheris (``python
fuzz/embed_answers_fuzz.py``) or without it (``--smoke N``). The first input byte picks the
reader and the expected count (0..63).
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fuzz import fuzzing
from modelmux.errors import UpstreamError
from modelmux.translate.embed_cohere import cohere_vectors
from modelmux.translate.embed_gemini import gemini_vectors
from modelmux.translate.embed_vertex import vertex_vectors
from modelmux.translate.embeddings import openai_embeddings

Reader = Callable[[bytes, str, int], tuple[list[list[float]], int]]
READERS: list[Reader] = [gemini_vectors, vertex_vectors, cohere_vectors]

SEEDS: list[bytes] = [
    b'{"embeddings":[{"values":[0.5,-1,2e-3]},{"values":[1]}]}',
    b'{"embeddings":[{"values":[1]}],"usageMetadata":{"promptTokenCount":4}}',
    b'{"predictions":[{"embeddings":{"values":[1,2],"statistics":{"token_count":3.0,'
    b'"truncated":false}}}],"metadata":{"billableCharacterCount":9}}',
    b'{"id":"e","embeddings":{"float":[[1,2],[3,4]]},"texts":["a","b"],'
    b'"meta":{"billed_units":{"input_tokens":7}}}',
    b'{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}',
    b'{"embeddings":{"float":[[1e300,-0.0]]}}',
]


def test_one_input(data: bytes) -> None:
    if not data:
        return
    reader = READERS[data[0] % len(READERS)]
    want = data[0] >> 2
    try:
        vectors, tokens = reader(data[1:], "fuzz", want)
    except UpstreamError:
        return
    assert len(vectors) == want and tokens >= 0
    assert all(isinstance(v, float) for vector in vectors for v in vector)
    for encoding in ("float", "base64"):
        try:
            built = openai_embeddings(vectors, model="m", encoding_format=encoding,
                                      prompt_tokens=tokens)
        except UpstreamError:
            assert encoding == "base64"  # a value beyond float32
            continue
        answer = json.loads(built)
        assert [d["index"] for d in answer["data"]] == list(range(want))


def mutate(rng: random.Random) -> bytes:
    """A seed answer, cut or bit-flipped, with a head byte that often expects its count."""
    body = rng.choice(SEEDS)
    if rng.random() < 0.5 and body:
        body = fuzzing.flip_bit(body, rng)
    if rng.random() < 0.2:
        body = body[: rng.randrange(len(body) + 1)]
    reader = rng.randrange(len(READERS))
    want = rng.choice([0, 1, 2, rng.randrange(64)])
    return bytes([(want << 2) | reader]) + body


def smoke(n: int, seed: int = 0) -> int:
    return fuzzing.smoke("embed_answers_fuzz", n, seed, mutate, test_one_input)


if __name__ == "__main__":
    fuzzing.cli(__doc__, smoke, lambda: test_one_input)
