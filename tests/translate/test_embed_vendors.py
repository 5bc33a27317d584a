"""The Gemini, Vertex and Cohere embeddings translators, without sockets: request bodies, answers
read back, OpenAI's answer in float and base64, and what a malformed answer becomes."""

from __future__ import annotations

import base64
import json
import struct

import pytest

from modelmux.errors import InvalidRequest, UpstreamError
from modelmux.schemas.openai_embeddings import EmbeddingRequest
from modelmux.translate.embed_cohere import cohere_embed_body, cohere_vectors
from modelmux.translate.embed_gemini import gemini_embed_body, gemini_vectors
from modelmux.translate.embed_vertex import vertex_embed_batch, vertex_embed_body, vertex_vectors
from modelmux.translate.embeddings import embed_options, openai_embeddings, slices, text_inputs


def test_gemini_body_names_the_model_per_request() -> None:
    body = json.loads(gemini_embed_body(["a", "b"], model="text-embedding-004", dimensions=None,
                                        task_type=None))
    assert body == {"requests": [
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": t}]}}
        for t in ("a", "b")]}
    tuned = json.loads(gemini_embed_body(["a"], model="models/x", dimensions=8,
                                         task_type="CLUSTERING"))["requests"][0]
    assert tuned["model"] == "models/x"
    assert (tuned["outputDimensionality"], tuned["taskType"]) == (8, "CLUSTERING")


def test_gemini_answer_read_back_and_checked() -> None:
    answer = b'{"embeddings": [{"values": [0.5, -1]}, {"values": [2]}]}'
    assert gemini_vectors(answer, "g", 2) == ([[0.5, -1.0], [2.0]], 0)
    counted = b'{"embeddings": [{"values": [1]}], "usageMetadata": {"promptTokenCount": 4}}'
    assert gemini_vectors(counted, "g", 1) == ([[1.0]], 4)
    with pytest.raises(UpstreamError, match="1 embeddings for 2 inputs"):
        gemini_vectors(b'{"embeddings": [{"values": [1]}]}', "g", 2)
    with pytest.raises(UpstreamError, match="unreadable"):
        gemini_vectors(b'{"embeddings": [{"values": "x"}]}', "g", 1)


def test_cohere_body_and_answer() -> None:
    body = json.loads(cohere_embed_body(["a"], model="embed-v4.0", input_type="search_query",
                                        dimensions=256))
    assert body == {"model": "embed-v4.0", "texts": ["a"], "input_type": "search_query",
                    "embedding_types": ["float"], "output_dimension": 256}
    answer = (b'{"id": "1", "embeddings": {"float": [[1, 2], [3, 4]]}, "texts": ["a", "b"],'
              b' "meta": {"billed_units": {"input_tokens": 7}}}')
    assert cohere_vectors(answer, "c", 2) == ([[1.0, 2.0], [3.0, 4.0]], 7)
    assert cohere_vectors(b'{"embeddings": {"float": [[1]]}}', "c", 1) == ([[1.0]], 0)
    with pytest.raises(UpstreamError, match="2 embeddings for 3 inputs"):
        cohere_vectors(answer, "c", 3)
    with pytest.raises(UpstreamError, match="unreadable"):
        cohere_vectors(b'{"message": "no"}', "c", 1)


def test_openai_answer_in_float_and_base64() -> None:
    vectors = [[0.25, -1.5], [3.0, 0.0]]
    plain = json.loads(openai_embeddings(vectors, model="m", encoding_format="float",
                                         prompt_tokens=5))
    assert plain["data"] == [{"object": "embedding", "index": i, "embedding": v}
                             for i, v in enumerate(vectors)]
    assert plain["usage"] == {"prompt_tokens": 5, "total_tokens": 5} and plain["model"] == "m"
    packed = json.loads(openai_embeddings(vectors, model="m", encoding_format="base64",
                                          prompt_tokens=0))
    raw = [base64.b64decode(d["embedding"]) for d in packed["data"]]
    assert [list(struct.unpack("<2f", r)) for r in raw] == vectors
    with pytest.raises(UpstreamError, match="float32"):
        openai_embeddings([[1e300]], model="m", encoding_format="base64", prompt_tokens=0)


def test_inputs_options_and_slices() -> None:
    request = EmbeddingRequest(model="m", input=["a", "b", "c"])
    assert text_inputs(request, "p", "cohere") == ["a", "b", "c"]
    with pytest.raises(InvalidRequest) as tokens:
        text_inputs(EmbeddingRequest(model="m", input=[1, 2]), "p", "cohere")
    assert tokens.value.param == "input"
    assert embed_options(b'{"input_type": "search_query", "x": 1}').input_type == "search_query"
    with pytest.raises(InvalidRequest):
        embed_options(b'{"task_type": 3}')
    assert slices(5, 2) == [(0, 2), (2, 4), (4, 5)] and slices(2, 96) == [(0, 2)]


def test_vertex_predict_body_answer_and_batch() -> None:
    body = json.loads(vertex_embed_body(["a", "b"], dimensions=None, task_type=None))
    assert body == {"instances": [{"content": "a"}, {"content": "b"}]}
    tuned = json.loads(vertex_embed_body(["a"], dimensions=4, task_type="CLUSTERING"))
    assert tuned == {"instances": [{"content": "a", "task_type": "CLUSTERING"}],
                     "parameters": {"outputDimensionality": 4}}
    answer = (b'{"predictions": [{"embeddings": {"values": [1, 2], "statistics": '
              b'{"token_count": 3.0, "truncated": false}}}, {"embeddings": {"values": [3]}}]}')
    assert vertex_vectors(answer, "v", 2) == ([[1.0, 2.0], [3.0]], 3)
    with pytest.raises(UpstreamError, match="2 embeddings for 1 inputs"):
        vertex_vectors(answer, "v", 1)
    with pytest.raises(UpstreamError, match="unreadable"):
        vertex_vectors(b'{"predictions": [{}]}', "v", 1)
    assert vertex_embed_batch("gemini-embedding-001", 250) == 1
    assert vertex_embed_batch("text-embedding-005", 250) == 250
