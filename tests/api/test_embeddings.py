"""``POST /v1/embeddings`` end to end: the official SDK (``client.embeddings.create``, float
and base64) → the real gateway → the built-in mock, or a fake upstream speaking OpenAI's,
Azure's or Hugging Face's wire format; batching, retries, fallback and errors."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import openai
import pytest

from modelmux.providers.mock import mock_vector
from tests.fakes.azure import FakeAzure
from tests.fakes.openai import FakeOpenAI, vector_of
from tests.providers.harness import gateway
from tests.upstream import run

MOCK = '[[provider]]\nname = "mock"\ntype = "mock"\nmodels = ["mock-embed"]\n'
TEXTS = ["alpha", "beta gamma", "délta ✓", "epsilon zeta eta", "theta"]


def floats(embedding: Any) -> list[float]:
    """A vector as floats: the SDK hands back base64 as is when the caller asked for it."""
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return list(embedding)


def compat(up: FakeOpenAI, extra: str = "", name: str = "local") -> str:
    return f"""
[[provider]]
name = "{name}"
type = "openai_compatible"
base_url = "{up.origin}/v1"
models = ["embed-small"]
{extra}
"""


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_mock_embeddings_are_deterministic_in_order(encoding: str) -> None:
    async def main() -> None:
        async with gateway(MOCK) as gw, gw.client() as client:
            got = await client.embeddings.create(model="mock-embed", input=TEXTS,
                                                 encoding_format=encoding)  # type: ignore[arg-type]
            assert [d.index for d in got.data] == list(range(len(TEXTS)))
            assert [floats(d.embedding) for d in got.data] == [mock_vector(t) for t in TEXTS]
            assert got.model == "mock-embed" and got.usage.prompt_tokens > 0
            one = await client.embeddings.create(model="mock-embed", input="alpha",
                                                 dimensions=5)
            assert one.data[0].embedding == mock_vector("alpha", 5)
            tokens = await client.embeddings.create(model="mock-embed", input=[[1, 2, 3], [4]])
            assert len(tokens.data) == 2 and tokens.usage.prompt_tokens == 4

    run("asyncio", main())


def test_sdk_default_base64_is_passed_through_and_decoded() -> None:
    async def main() -> None:
        async with FakeOpenAI() as up, gateway(compat(up)) as gw, gw.client() as client:
            got = await client.embeddings.create(model="embed-small", input=TEXTS[:2])
            assert json.loads(up.raw_bodies[0])["encoding_format"] == "base64"
            assert [d.embedding for d in got.data] == [vector_of(t) for t in TEXTS[:2]]

    run("asyncio", main())


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_large_inputs_are_batched_and_reassembled_in_order(encoding: str) -> None:
    async def main() -> None:
        async with (
            FakeOpenAI() as up,
            gateway(compat(up, "embed_batch_size = 2")) as gw,
            gw.client() as client,
        ):
            got = await client.embeddings.create(model="embed-small", input=TEXTS, dimensions=4,
                                                 encoding_format=encoding)  # type: ignore[arg-type]
            assert up.embedded == [TEXTS[0:2], TEXTS[2:4], TEXTS[4:5]]
            assert all(json.loads(b)["dimensions"] == 4 for b in up.raw_bodies)
            assert [d.index for d in got.data] == [0, 1, 2, 3, 4]
            assert [floats(d.embedding) for d in got.data] == [vector_of(t, 4) for t in TEXTS]
            words = sum(len(t.split()) for t in TEXTS)
            assert (got.usage.prompt_tokens, got.usage.total_tokens) == (words, words)
            assert got.model == "embed-small"

    run("asyncio", main())


def test_azure_and_huggingface_embeddings_paths() -> None:
    async def main() -> None:
        async with FakeAzure(deployments=("emb-dep",)) as az, FakeOpenAI(api_key="hf") as hf:
            config = f"""
[[provider]]
name = "azure"
type = "azure"
base_url = "{az.origin}"
api_key = "azure-key"
api_version = "2024-10-21"
models = ["emb-dep"]

[[provider]]
name = "hf"
type = "huggingface"
api_key = "hf"
base_url = "{hf.origin}/v1"
models = ["BAAI/bge-small-en-v1.5"]
"""
            async with gateway(config) as gw, gw.client() as client:
                got = await client.embeddings.create(model="emb-dep", input="hello world",
                                                     encoding_format="float")
                assert got.data[0].embedding == vector_of("hello world")
                assert az.requests[0].path == ("/openai/deployments/emb-dep/embeddings"
                                               "?api-version=2024-10-21")
                got = await client.embeddings.create(model="BAAI/bge-small-en-v1.5", input=["x"])
                assert got.data[0].embedding == vector_of("x")
                assert hf.requests[0].path == "/v1/embeddings"
                listed = {m.id async for m in client.models.list()}
                assert {"emb-dep", "BAAI/bge-small-en-v1.5"} <= listed

    run("asyncio", main())


def test_retries_and_fallback_apply_as_for_chat() -> None:
    async def main() -> None:
        async with FakeOpenAI() as first, FakeOpenAI() as second:
            config = (compat(first, "max_retries = 1") + compat(second, "max_retries = 0", "spare")
                      + '\n[routing.fallback]\nenabled = true\nbase_ms = 1\nmax_ms = 1\n')
            async with gateway(config) as gw, gw.client() as client:
                first.faults.extend(["500", "ok"])
                got = await client.embeddings.create(model="embed-small", input=["a"])
                assert len(first.requests) == 2 and got.data[0].embedding == vector_of("a")
                first.faults.extend(["500", "500"])
                raw = await client.embeddings.with_raw_response.create(model="embed-small",
                                                                       input=["b"])
                assert raw.headers["x-modelmux-provider"] == "spare"
                assert raw.parse().data[0].embedding == vector_of("b")

    run("asyncio", main())


def test_errors_in_openai_shape() -> None:
    async def main() -> None:
        config = MOCK + ('[[provider]]\nname = "claude"\ntype = "anthropic"\napi_key = "k"\n'
                         'base_url = "http://127.0.0.1:9"\nmodels = ["claude-x"]\n')
        async with gateway(config) as gw, gw.client() as client:
            with pytest.raises(openai.BadRequestError) as empty:
                await client.embeddings.create(model="mock-embed", input=[])
            assert empty.value.body["param"] == "input"
            with pytest.raises(openai.BadRequestError) as wrong:
                await client.embeddings.create(model="mock-embed", input="x",
                                               encoding_format="hex")  # type: ignore[arg-type]
            assert wrong.value.body["param"] == "encoding_format"
            with pytest.raises(openai.NotFoundError):
                await client.embeddings.create(model="nope", input="x")
            with pytest.raises(openai.BadRequestError) as unserved:
                await client.embeddings.create(model="claude-x", input="x")
            assert unserved.value.code == "embeddings_not_supported"
            assert "does not serve embeddings" in unserved.value.body["message"]
            ok = await client.embeddings.create(model="mock-embed", input="still serving")
            assert len(ok.data) == 1

    run("asyncio", main())
