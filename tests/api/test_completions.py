"""The legacy ``POST /v1/completions`` door: the official SDK (``client.completions.create``)
→ the real gateway → fake OpenAI-format and Azure upstreams, streamed and not; provider types
without the endpoint answer 400 naming the ones that have it."""

from __future__ import annotations

import json

import openai
import pytest

from tests.fakes.answers import TEXT
from tests.fakes.azure import FakeAzure
from tests.fakes.openai import FakeOpenAI
from tests.providers.harness import gateway
from tests.upstream import run


def config(up: FakeOpenAI, az: FakeAzure) -> str:
    return f"""
[models]
"instruct" = "azure/instruct-dep"

[[provider]]
name = "local"
type = "openai_compatible"
base_url = "{up.origin}/v1"
models = ["qwen-base"]

[[provider]]
name = "azure"
type = "azure"
base_url = "{az.origin}"
api_key = "azure-key"
api_version = "2024-10-21"
models = ["instruct-dep"]

[[provider]]
name = "mock"
type = "mock"
models = ["mock"]
"""


def test_completions_pass_through_streamed_and_not() -> None:
    async def main() -> None:
        async with (
            FakeOpenAI() as up,
            FakeAzure(deployments=("instruct-dep",)) as az,
            gateway(config(up, az)) as gw,
            gw.client() as client,
        ):
            done = await client.completions.create(model="qwen-base", prompt="Once upon",
                                                   max_tokens=16, echo=False)
            assert done.choices[0].text == TEXT.text and done.model == "qwen-base"
            assert done.usage is not None and done.usage.prompt_tokens == TEXT.prompt_tokens
            sent = json.loads(up.raw_bodies[0])
            assert (sent["prompt"], sent["max_tokens"], sent["echo"]) == ("Once upon", 16, False)
            assert up.requests[0].path == "/v1/completions"
            stream = await client.completions.create(
                model="qwen-base", prompt=["a", "b"], stream=True,
                stream_options={"include_usage": True})
            text, models, usage = "", set(), None
            async for chunk in stream:
                models.add(chunk.model)
                text += "".join(c.text for c in chunk.choices)
                usage = chunk.usage or usage
            assert text == TEXT.text and models == {"qwen-base"}
            assert usage is not None and usage.completion_tokens == TEXT.completion_tokens
            done = await client.completions.create(model="instruct", prompt="x")
            assert done.choices[0].text == TEXT.text and done.model == "instruct"
            assert az.requests[0].path == ("/openai/deployments/instruct-dep/completions"
                                           "?api-version=2024-10-21")

    run("asyncio", main())


def test_other_provider_types_name_the_ones_that_serve_it() -> None:
    async def main() -> None:
        async with (
            FakeOpenAI() as up,
            FakeAzure() as az,
            gateway(config(up, az)) as gw,
            gw.client() as client,
        ):
            for stream in (False, True):
                with pytest.raises(openai.BadRequestError) as caught:
                    await client.completions.create(model="mock", prompt="x", stream=stream)
                assert caught.value.code == "completions_not_supported"
                assert "openai, azure, openai_compatible, huggingface" in caught.value.message
            with pytest.raises(openai.BadRequestError) as bad:
                await client.completions.create(model="qwen-base", prompt={"no": 1})  # type: ignore[arg-type]
            assert bad.value.body["param"] == "prompt"
            assert up.requests == []

    run("asyncio", main())
