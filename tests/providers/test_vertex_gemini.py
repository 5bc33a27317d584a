"""Gemini models on the ``vertex`` type, beside Claude in one provider: the official SDKs → the
gateway → a fake Vertex AI host serving ``publishers/google`` and ``publishers/anthropic`` with
one OAuth token check. The model name picks the publisher, path and wire format; embeddings go
to Google's ``:predict``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import openai
import pytest

from tests.api.test_embeddings import floats
from tests.fakes.answers import TEXT, TOOLS, Answer
from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.http import SPLITS, Split, whole
from tests.fakes.openai import vector_of
from tests.fakes.vertex import FakeVertex
from tests.messages.helpers import client as anthropic_client
from tests.providers.harness import (
    MESSAGES,
    Gateway,
    ask_each_way,
    expected,
    from_completion,
    provider_toml,
    same,
    same_minting_ids,
    serving,
    vertex_keys,
)
from tests.upstream import LOOPS, run

MODELS = ["sonnet", "gemini-2.0-flash", "text-embedding-005", "gemini-embedding-001"]


@dataclass
class Setup:
    gw: Gateway
    vertex: FakeVertex
    oauth: FakeGoogleOAuth


@contextlib.asynccontextmanager
async def vertex_gateway(*, answer: Answer = TEXT, split: Split = whole,
                         extra: str = "") -> AsyncIterator[Setup]:
    async with FakeGoogleOAuth() as oauth, serving(
            FakeVertex(token_ok=oauth.valid, answer=answer, split=split),
            lambda vertex: provider_toml("vtx", "vertex", vertex.origin, MODELS,
                                         vertex_keys(oauth, "us-central1"), extra)) as (gw, vertex):
        yield Setup(gw, vertex, oauth)


@pytest.mark.parametrize("split", ["whole", "bytewise"])
@pytest.mark.parametrize("loop", LOOPS)
def test_gemini_on_vertex_streamed_and_not_in_every_split(loop: str, split: str) -> None:
    async def main() -> None:
        for answer in (TEXT, TOOLS):
            async with vertex_gateway(answer=answer, split=SPLITS[split]) as s, \
                    s.gw.client() as client:
                await ask_each_way(client, "gemini-2.0-flash", answer, plain=False,
                                   check=same_minting_ids)
                gemini = s.vertex.gemini
                assert gemini.paths == [
                    {"project": "fake-project", "region": "us-central1",
                     "model": "gemini-2.0-flash", "method": method}
                    for method in ("generateContent", "streamGenerateContent?alt=sse")]
                assert gemini.bodies[-1]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
                assert "model" not in gemini.bodies[-1]
                assert s.vertex.claude.bodies == []

    run(loop, main(), timeout=60)


def test_claude_and_gemini_side_by_side_share_one_token() -> None:
    async def main() -> None:
        async with vertex_gateway() as s, s.gw.client() as client:
            claude = await client.chat.completions.create(model="sonnet", messages=MESSAGES)
            same(from_completion(claude), expected(TEXT, "sonnet"))
            gemini = await client.chat.completions.create(model="vtx/gemini-2.0-flash",
                                                          messages=MESSAGES)
            assert gemini.choices[0].message.content == TEXT.text
            assert s.vertex.claude.paths[0]["model"] == "sonnet"
            assert [p["model"] for p in s.vertex.gemini.paths] == ["gemini-2.0-flash"]
            tokens = {r.headers["authorization"] for r in s.vertex.requests}
            assert len(tokens) == 1 and len(s.oauth.requests) == 1
            listed = {m.id async for m in client.models.list()}
            assert {"sonnet", "gemini-2.0-flash"} <= listed

    run("asyncio", main())


def test_gemini_on_vertex_refreshes_the_token_once_on_401() -> None:
    async def main() -> None:
        async with vertex_gateway() as s, s.gw.client() as client:
            await client.chat.completions.create(model="gemini-2.0-flash", messages=MESSAGES)
            s.oauth.revoke_all()
            again = await client.chat.completions.create(model="gemini-2.0-flash",
                                                         messages=MESSAGES)
            assert again.choices[0].message.content == TEXT.text
            assert len(s.oauth.requests) == 2 and len(s.vertex.requests) == 3
            assert len(s.vertex.gemini.paths) == 2  # the 401 is refused before the path is kept

    run("asyncio", main())


def test_messages_door_and_count_tokens_translate_for_gemini_models() -> None:
    async def main() -> None:
        async with vertex_gateway() as s:
            claude = anthropic_client(s.gw)
            try:
                answer = await claude.messages.create(
                    model="gemini-2.0-flash", max_tokens=50,
                    messages=[{"role": "user", "content": "Hello"}])
                assert answer.content[0].text == TEXT.text  # type: ignore[union-attr]
                assert s.vertex.gemini.bodies[-1]["contents"][0]["parts"] == [{"text": "Hello"}]
                assert s.vertex.claude.bodies == []
                raw = await claude.messages.with_raw_response.count_tokens(
                    model="gemini-2.0-flash", messages=[{"role": "user", "content": "Hello"}])
                assert raw.headers["x-modelmux-token-count"] == "native"
                assert s.vertex.gemini.paths[-1]["method"] == "countTokens"
                native = await claude.messages.with_raw_response.count_tokens(
                    model="sonnet", messages=[{"role": "user", "content": "Hello"}])
                assert native.headers["x-modelmux-token-count"] == "native"
            finally:
                await claude.close()

    run("asyncio", main())


def test_errors_name_the_vertex_provider_and_keep_google_messages() -> None:
    async def main() -> None:
        async with vertex_gateway(extra="max_retries = 0") as s, s.gw.client() as client:
            with pytest.raises(openai.BadRequestError) as refused:
                await client.chat.completions.create(model="gemini-2.0-flash",
                                                     messages=MESSAGES, n=2)
            assert "provider 'vtx' (vertex)" in refused.value.message
            s.vertex.gemini.faults.append("400")
            with pytest.raises(openai.BadRequestError) as bad:
                await client.chat.completions.create(model="gemini-2.0-flash", messages=MESSAGES)
            assert "fake INVALID_ARGUMENT" in bad.value.message
            with pytest.raises(openai.NotFoundError) as no_embed:
                await client.embeddings.create(model="gemini-2.0-flash", input="x")
            assert "Publisher Model" in no_embed.value.message

    run("asyncio", main())


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_vertex_embeddings_through_predict(encoding: str) -> None:
    texts = [f"passage number {i}" for i in range(260)]

    async def main() -> None:
        async with vertex_gateway() as s, s.gw.client() as client:
            got = await client.embeddings.create(model="text-embedding-005", input=texts,
                                                 encoding_format=encoding)  # type: ignore[arg-type]
            assert [floats(d.embedding) for d in got.data] == [vector_of(t) for t in texts]
            gemini = s.vertex.gemini
            assert [len(b["instances"]) for b in gemini.embed_bodies] == [250, 10]
            assert {p["method"] for p in gemini.paths} == {"predict"}
            assert got.usage.prompt_tokens == 3 * len(texts)  # Vertex's token statistics
            assert gemini.embed_bodies[0]["instances"][0] == {"content": texts[0]}
            await client.embeddings.create(model="gemini-embedding-001", input=texts[:3],
                                           dimensions=5,
                                           extra_body={"task_type": "RETRIEVAL_QUERY"})
            sent = gemini.embed_bodies[2:]
            assert [len(b["instances"]) for b in sent] == [1, 1, 1]  # one a request
            assert sent[0] == {"instances": [{"content": texts[0],
                                              "task_type": "RETRIEVAL_QUERY"}],
                               "parameters": {"outputDimensionality": 5}}

    run("asyncio", main(), timeout=30)


def test_vertex_embed_batch_and_task_type_from_config() -> None:
    async def main() -> None:
        extra = 'embed_batch_size = 2\nembed_task_type = "CLUSTERING"'
        async with vertex_gateway(extra=extra) as s, s.gw.client() as client:
            await client.embeddings.create(model="text-embedding-005", input=["a", "b", "c"])
            bodies = s.vertex.gemini.embed_bodies
            assert [len(b["instances"]) for b in bodies] == [2, 1]
            assert bodies[0]["instances"][0]["task_type"] == "CLUSTERING"
            with pytest.raises(openai.BadRequestError) as bad:
                await client.embeddings.create(model="text-embedding-005", input="x",
                                               extra_body={"task_type": "POETRY"})
            assert "Unsupported task type: POETRY" in bad.value.message

    run("asyncio", main())
