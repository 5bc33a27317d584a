"""``bedrock`` embeddings through ``/v1/embeddings`` with the official SDK: Titan (one text per
signed InvokeModel, ``dimensions`` passed on) and Cohere (96 texts a request, ``input_type``
from the client's body, else the config), vectors in input order as floats or base64, usage
summed, refusals."""

from __future__ import annotations

import openai
import pytest

from tests.fakes.bedrock import FakeBedrock, vector_of
from tests.providers.harness import gateway
from tests.upstream import run

TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"
CHAT = "anthropic.claude-3-5-sonnet-20241022-v2:0"


def config(origin: str, extra: str = "") -> str:
    return (f'[[provider]]\nname = "br"\ntype = "bedrock"\nregion = "us-east-1"\n'
            f'models = ["{TITAN}", "{COHERE}", "{CHAT}"]\nbase_url = "{origin}"\n'
            'access_key_id = "AKIDFAKE000000000001"\nsecret_access_key = "fake/secret"\n'
            f"{extra}")


def test_titan_one_request_per_text() -> None:
    async def main() -> None:
        async with FakeBedrock() as fake, gateway(config(fake.origin)) as gw, \
                gw.client() as client:
            texts = ["one", "two words", "three little words", "x"]
            done = await client.embeddings.create(model=TITAN, input=texts, dimensions=4)
            assert [d.embedding for d in done.data] == [vector_of(t, 4) for t in texts]
            assert done.model == TITAN and done.usage.prompt_tokens == 1 + 2 + 3 + 1
            assert sorted(b["inputText"] for b in fake.bodies) == sorted(texts)
            assert all(b["dimensions"] == 4 for b in fake.bodies)
            assert all(r.path == "/model/amazon.titan-embed-text-v2%3A0/invoke"
                       for r in fake.requests)
            floats = await client.embeddings.create(model=TITAN, input="solo",
                                                    encoding_format="float")
            assert floats.data[0].embedding == vector_of("solo", 4)

    run("asyncio", main())


def test_cohere_batches_of_96_in_order_with_the_configured_input_type() -> None:
    async def main() -> None:
        async with FakeBedrock() as fake, gateway(config(
                fake.origin, 'embed_input_type = "search_query"\n')) as gw, gw.client() as client:
            texts = [f"text {'w ' * (i % 5)}{i}" for i in range(200)]
            done = await client.embeddings.create(model=COHERE, input=texts)
            assert [d.index for d in done.data] == list(range(200))
            assert [d.embedding for d in done.data] == [vector_of(t, 4) for t in texts]
            assert [len(b["texts"]) for b in fake.bodies] == [96, 96, 8]
            assert {b["input_type"] for b in fake.bodies} == {"search_query"}
            assert done.usage.prompt_tokens == sum(len(t.split()) for t in texts)

    run("asyncio", main())


def test_cohere_takes_the_clients_input_type_over_the_configured_one() -> None:
    async def main() -> None:
        async with FakeBedrock() as fake, gateway(config(
                fake.origin, 'embed_input_type = "search_query"\n')) as gw, gw.client() as client:
            done = await client.embeddings.create(model=COHERE, input=["a", "b"],
                                                  extra_body={"input_type": "classification"})
            assert len(done.data) == 2
            assert [b["input_type"] for b in fake.bodies] == ["classification"]
            with pytest.raises(openai.BadRequestError, match="input_type"):
                await client.embeddings.create(model=COHERE, input=["a"],
                                               extra_body={"input_type": 3})
            assert len(fake.requests) == 1

    run("asyncio", main())


@pytest.mark.parametrize(("model", "kwargs", "param"), [
    (CHAT, {}, "model"),
    (TITAN, {"input": [[1, 2, 3]]}, "input"),
    (COHERE, {"dimensions": 8}, "dimensions"),
])
def test_refusals_without_an_upstream_call(model: str, kwargs: dict[str, object],
                                          param: str) -> None:
    async def main() -> None:
        async with FakeBedrock() as fake, gateway(config(fake.origin)) as gw, \
                gw.client() as client:
            with pytest.raises(openai.BadRequestError) as caught:
                await client.embeddings.create(model=model, **{"input": "hi", **kwargs})
            assert caught.value.param == param  # type: ignore[attr-defined]
            assert fake.requests == []

    run("asyncio", main())


def test_throttling_is_retried_then_reported() -> None:
    async def main() -> None:
        async with FakeBedrock() as fake, gateway(config(fake.origin)) as gw, \
                gw.client() as client:
            fake.faults.append("429")
            done = await client.embeddings.create(model=COHERE, input=["a", "b"])
            assert len(done.data) == 2 and len(fake.requests) == 2
            fake.faults.extend(["400"])
            with pytest.raises(openai.BadRequestError, match="model identifier is invalid"):
                await client.embeddings.create(model=COHERE, input=["a"])

    run("asyncio", main())


def test_one_failed_titan_request_fails_the_call() -> None:
    async def main() -> None:
        async with FakeBedrock() as fake, gateway(config(
                fake.origin, "max_retries = 0\n")) as gw, gw.client() as client:
            fake.faults.append("403")
            with pytest.raises(openai.PermissionDeniedError):
                await client.embeddings.create(model=TITAN, input=["a", "b", "c"])

    run("asyncio", main())
