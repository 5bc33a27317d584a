"""``/v1/embeddings`` through the ``gemini`` and ``cohere`` types: the official SDK
(``client.embeddings.create``, float and base64) → the real gateway → fakes speaking
``batchEmbedContents`` and ``/v2/embed``; batching to each API's limit, options, usage, errors."""

from __future__ import annotations

import openai
import pytest

from tests.api.test_embeddings import floats
from tests.fakes.cohere import FakeCohere, embed_tokens
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import vector_of
from tests.providers.harness import gateway
from tests.upstream import run

TEXTS = [f"text number {i} " + "word " * (i % 4) for i in range(230)]


def gemini_toml(fake: FakeGemini, extra: str = "") -> str:
    return (f'[[provider]]\nname = "gem"\ntype = "gemini"\napi_key = "AIza-test"\n'
            f'base_url = "{fake.origin}"\nmodels = ["text-embedding-004", "embed-missing", '
            f'"gemini-2.0-flash"]\n{extra}\n')


def cohere_toml(fake: FakeCohere, extra: str = "") -> str:
    return (f'[[provider]]\nname = "co"\ntype = "cohere"\napi_key = "co-test"\n'
            f'base_url = "{fake.origin}"\nmodels = ["embed-english-v3.0", "embed-v4.0", '
            f'"embed-missing"]\n{extra}\n')


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_gemini_batches_of_100_in_order(encoding: str) -> None:
    async def main() -> None:
        async with FakeGemini() as fake, gateway(gemini_toml(fake)) as gw, \
                gw.client() as client:
            got = await client.embeddings.create(model="text-embedding-004", input=TEXTS,
                                                 encoding_format=encoding)  # type: ignore[arg-type]
            assert [len(b["requests"]) for b in fake.embed_bodies] == [100, 100, 30]
            assert [d.index for d in got.data] == list(range(len(TEXTS)))
            assert [floats(d.embedding) for d in got.data] == [vector_of(t) for t in TEXTS]
            assert got.model == "text-embedding-004"
            assert got.usage.prompt_tokens == 0 and got.usage.total_tokens == 0
            assert fake.paths[0]["model"] == "text-embedding-004"
            assert fake.requests[0].headers["x-goog-api-key"] == "AIza-test"
            sent = fake.embed_bodies[0]["requests"][0]
            assert sent == {"model": "models/text-embedding-004",
                            "content": {"parts": [{"text": TEXTS[0]}]}}

    run("asyncio", main(), timeout=30)


def test_gemini_dimensions_task_type_and_configured_batch() -> None:
    async def main() -> None:
        extra = 'embed_batch_size = 2\nembed_task_type = "RETRIEVAL_DOCUMENT"'
        async with FakeGemini() as fake, gateway(gemini_toml(fake, extra)) as gw, \
                gw.client() as client:
            got = await client.embeddings.create(model="text-embedding-004", input=TEXTS[:3],
                                                 dimensions=5, encoding_format="float")
            assert [d.embedding for d in got.data] == [vector_of(t, 5) for t in TEXTS[:3]]
            assert [len(b["requests"]) for b in fake.embed_bodies] == [2, 1]
            first = fake.embed_bodies[0]["requests"][0]
            assert first["outputDimensionality"] == 5
            assert first["taskType"] == "RETRIEVAL_DOCUMENT"
            await client.embeddings.create(model="text-embedding-004", input="query",
                                           extra_body={"task_type": "RETRIEVAL_QUERY"})
            assert fake.embed_bodies[-1]["requests"][0]["taskType"] == "RETRIEVAL_QUERY"

    run("asyncio", main())


def test_cohere_batches_of_96_with_billed_usage() -> None:
    async def main() -> None:
        async with FakeCohere() as fake, gateway(cohere_toml(fake)) as gw, \
                gw.client() as client:
            got = await client.embeddings.create(model="embed-english-v3.0", input=TEXTS)
            assert [len(b["texts"]) for b in fake.embed_bodies] == [96, 96, 38]
            assert [floats(d.embedding) for d in got.data] == [vector_of(t) for t in TEXTS]
            want = sum(embed_tokens(t) for t in TEXTS)
            assert got.usage.prompt_tokens == want and got.usage.total_tokens == want
            body = fake.embed_bodies[0]
            assert body["input_type"] == "search_document"
            assert body["embedding_types"] == ["float"] and body["model"] == "embed-english-v3.0"
            assert "output_dimension" not in body

    run("asyncio", main(), timeout=30)


def test_cohere_input_type_from_config_and_request() -> None:
    async def main() -> None:
        extra = 'embed_input_type = "clustering"\nembed_batch_size = 2'
        async with FakeCohere() as fake, gateway(cohere_toml(fake, extra)) as gw, \
                gw.client() as client:
            got = await client.embeddings.create(model="embed-v4.0", input=TEXTS[:3],
                                                 dimensions=4, encoding_format="float")
            assert [d.embedding for d in got.data] == [vector_of(t, 4) for t in TEXTS[:3]]
            assert [len(b["texts"]) for b in fake.embed_bodies] == [2, 1]
            assert fake.embed_bodies[0]["input_type"] == "clustering"
            assert fake.embed_bodies[0]["output_dimension"] == 4
            await client.embeddings.create(model="embed-v4.0", input="q",
                                           extra_body={"input_type": "search_query"})
            assert fake.embed_bodies[-1]["input_type"] == "search_query"

    run("asyncio", main())


def test_errors_keep_the_provider_message_and_the_server_keeps_serving() -> None:
    async def main() -> None:
        async with FakeGemini() as gem, FakeCohere() as co, \
                gateway(gemini_toml(gem) + cohere_toml(co)) as gw, gw.client() as client:
            for model in ("embed-missing",):
                with pytest.raises(openai.NotFoundError) as missing:
                    await client.embeddings.create(model=f"gem/{model}", input="x")
                assert missing.value.code == "model_not_found"
                assert "is not found for API version v1beta" in missing.value.body["message"]
                with pytest.raises(openai.NotFoundError) as gone:
                    await client.embeddings.create(model=f"co/{model}", input="x")
                assert "model 'embed-missing' not found" in gone.value.body["message"]
            with pytest.raises(openai.BadRequestError) as bad_type:
                await client.embeddings.create(model="embed-v4.0", input="x",
                                               extra_body={"input_type": "poetry"})
            assert "valid input_type must be provided" in bad_type.value.body["message"]
            with pytest.raises(openai.BadRequestError) as bad_task:
                await client.embeddings.create(model="text-embedding-004", input="x",
                                               extra_body={"task_type": "POETRY"})
            assert "requests[0].task_type" in bad_task.value.body["message"]
            for model in ("text-embedding-004", "embed-v4.0"):
                with pytest.raises(openai.BadRequestError) as tokens:
                    await client.embeddings.create(model=model, input=[[1, 2, 3]])
                assert tokens.value.body["param"] == "input"
                assert "embeds text only" in tokens.value.body["message"]
                with pytest.raises(openai.BadRequestError) as typed:
                    await client.embeddings.create(model=model, input="x",
                                                   extra_body={"input_type": 3, "task_type": 3})
                assert "Expected `str | null`" in typed.value.body["message"]
            gem.faults.append("503")
            before = len(gem.embed_bodies)
            retried = await client.embeddings.create(model="text-embedding-004", input="x")
            assert len(gem.embed_bodies) == before + 2 and len(retried.data) == 1
            ok = await client.embeddings.create(model="embed-v4.0", input="still serving")
            assert len(ok.data) == 1

    run("asyncio", main(), timeout=30)
