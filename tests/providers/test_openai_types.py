"""``openai``, ``huggingface`` and ``azure`` end to end: the official SDK → the real gateway →
a fake speaking each API's wire format (OpenAI's paths and headers, Hugging Face's error bodies,
Azure's deployment paths, api-version, ``api-key`` and content-filter errors)."""

from __future__ import annotations

import json

import openai
import pytest

from modelmux.config.load import ConfigError
from modelmux.config.schema import decode
from modelmux.providers.registry import build_provider
from modelmux.upstream import ConnectionPool
from tests.fakes.answers import TEXT, TOOLS, Answer
from tests.fakes.azure import FakeAzure
from tests.fakes.openai import FakeOpenAI, vector_of
from tests.providers.harness import (
    MESSAGES,
    TOOLS_PARAM,
    collect,
    expected,
    from_completion,
    gateway,
    same,
)
from tests.upstream import run

RATE = [("x-ratelimit-limit-requests", "500"), ("x-ratelimit-remaining-tokens", "149984"),
        ("x-ratelimit-reset-requests", "120ms")]


def openai_config(up: FakeOpenAI, extra: str = "") -> str:
    return f"""
[[provider]]
name = "openai"
type = "openai"
api_key = "sk-test"
base_url = "{up.origin}/v1"
organization = "org-abc"
project = "proj_xyz"
models = ["gpt-4o-mini"]
{extra}
"""


def test_openai_sends_org_and_project_and_passes_rate_limit_headers_back() -> None:
    async def main() -> None:
        async with (
            FakeOpenAI(api_key="sk-test", answer=TOOLS, answer_headers=RATE) as up,
            gateway(openai_config(up, "max_retries = 0")) as gw,
            gw.client() as client,
        ):
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS_PARAM)
            same(from_completion(raw.parse()), expected(TOOLS, "gpt-4o-mini"))
            for name, value in RATE:
                assert raw.headers.get(name) == value
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS_PARAM, stream=True,
                stream_options={"include_usage": True})
            same(await collect(stream), expected(TOOLS, "gpt-4o-mini"))
            for request in up.requests:
                assert request.path == "/v1/chat/completions"
                assert request.headers["openai-organization"] == "org-abc"
                assert request.headers["openai-project"] == "proj_xyz"
            up.faults.append("429")
            with pytest.raises(openai.RateLimitError) as caught:
                await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            assert caught.value.response.headers.get("x-ratelimit-limit-requests") == "500"

    run("asyncio", main())


def test_openai_embeddings_and_huggingface_tools() -> None:
    async def main() -> None:
        async with (
            FakeOpenAI(api_key="sk-test", answer_headers=RATE) as up,
            FakeOpenAI(api_key="hf_token", answer=TOOLS) as hf,
            gateway(openai_config(up, 'models = ["gpt-4o-mini", "text-embedding-3-small"]')
                    .replace('models = ["gpt-4o-mini"]\n', "") + hf_config(hf)) as gw,
            gw.client() as client,
        ):
            raw = await client.embeddings.with_raw_response.create(
                model="text-embedding-3-small", input=["a", "b"])
            got = raw.parse()
            assert [d.embedding for d in got.data] == [vector_of("a"), vector_of("b")]
            assert raw.headers.get("x-ratelimit-limit-requests") == "500"
            assert up.requests[-1].path == "/v1/embeddings"
            assert up.requests[-1].headers["openai-organization"] == "org-abc"
            model = "meta-llama/Llama-3.1-8B-Instruct"
            done = await client.chat.completions.create(model=model, messages=MESSAGES,
                                                        tools=TOOLS_PARAM)
            same(from_completion(done), expected(TOOLS, model))
            stream = await client.chat.completions.create(
                model=model, messages=MESSAGES, tools=TOOLS_PARAM, stream=True,
                stream_options={"include_usage": True})
            same(await collect(stream), expected(TOOLS, model))

    run("asyncio", main())


def test_openai_defaults_to_api_openai_com_and_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    config = decode('[[provider]]\nname = "o"\ntype = "openai"\nmodels = ["m"]\n')
    provider = build_provider(config.provider[0], ConnectionPool())
    assert provider.url_for("m", "/chat/completions") == "https://api.openai.com/v1/chat/completions"
    assert provider.upstream.auth._headers == [(b"authorization", b"Bearer sk-env")]


def hf_config(up: FakeOpenAI, extra: str = "") -> str:
    return f"""
[[provider]]
name = "hf"
type = "huggingface"
api_key = "hf_token"
base_url = "{up.origin}/v1"
models = ["meta-llama/Llama-3.1-8B-Instruct"]
{extra}
"""


def test_huggingface_chat_and_its_error_bodies_in_openai_shape() -> None:
    model = "meta-llama/Llama-3.1-8B-Instruct"

    async def main() -> None:
        async with (
            FakeOpenAI(api_key="hf_token") as up,
            gateway(hf_config(up, "max_retries = 0")) as gw,
            gw.client() as client,
        ):
            stream = await client.chat.completions.create(model=model, messages=MESSAGES,
                                                          stream=True)
            same(await collect(stream), expected(TEXT, model, usage=False))
            up.faults.append("hf_error")
            with pytest.raises(openai.BadRequestError) as bad:
                await client.chat.completions.create(model=model, messages=MESSAGES)
            assert bad.value.body["message"] == ("Input validation error: `inputs` must be "
                                                 "non-empty")
            up.faults.append("hf_loading")
            with pytest.raises(openai.InternalServerError) as loading:
                await client.chat.completions.create(model=model, messages=MESSAGES)
            assert loading.value.status_code == 503
            assert loading.value.body["code"] == "model_loading"
            assert "currently loading" in loading.value.body["message"]
            assert loading.value.response.headers["retry-after"] == "2"
            up.faults.append("hf_stream_error")
            with pytest.raises(openai.BadRequestError) as streamed:
                await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
            assert "max_new_tokens" in streamed.value.body["message"]

    run("asyncio", main())


def test_huggingface_model_loading_is_retried_after_its_estimate() -> None:
    model = "meta-llama/Llama-3.1-8B-Instruct"

    async def main() -> None:
        async with (
            FakeOpenAI(api_key="hf_token") as up,
            gateway(hf_config(up, "max_retries = 1")) as gw,
            gw.client() as client,
        ):
            waits: list[float] = []

            async def sleep(delay: float) -> None:
                waits.append(delay)

            provider = next(p for p in gw.app.providers if p.name == "hf")
            provider.retry = provider.retry.__class__(max_retries=1, sleep=sleep)
            up.faults.append("hf_loading")
            done = await client.chat.completions.create(model=model, messages=MESSAGES)
            same(from_completion(done), expected(TEXT, model))
            assert len(up.requests) == 2
            assert waits and waits[0] >= 1.5

    run("asyncio", main())


def azure_config(up: FakeAzure, version: str = "2024-10-21", extra: str = "") -> str:
    return f"""
[models]
"gpt-4o" = "azure/gpt-4o-prod"

[[provider]]
name = "azure"
type = "azure"
base_url = "{up.origin}"
api_key = "azure-key"
api_version = "{version}"
models = ["gpt-4o-prod"]
{extra}
"""


class Filtered(Answer):
    finish_reason = "content_filter"  # type: ignore[assignment]


@pytest.mark.parametrize("version", ["2024-10-21", "v1"])
def test_azure_paths_key_and_answers(version: str) -> None:
    async def main() -> None:
        async with (
            FakeAzure(answer=TOOLS) as up,
            gateway(azure_config(up, version)) as gw,
            gw.client() as client,
        ):
            done = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                                        tools=TOOLS_PARAM)
            same(from_completion(done), expected(TOOLS, "gpt-4o"))
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, tools=TOOLS_PARAM, stream=True,
                stream_options={"include_usage": True})
            same(await collect(stream), expected(TOOLS, "gpt-4o"))
            want = ("/openai/v1/chat/completions" if version == "v1" else
                    "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21")
            assert [r.path for r in up.requests] == [want, want]
            assert all(json.loads(b)["model"] == "gpt-4o-prod" for b in up.raw_bodies)
            assert all("authorization" not in r.headers for r in up.requests)

    run("asyncio", main())


def test_the_azure_fake_speaks_what_the_azure_sdk_sends() -> None:
    async def main() -> None:
        async with FakeAzure() as up:
            client = openai.AsyncAzureOpenAI(azure_endpoint=up.origin, api_key="azure-key",
                                             api_version="2024-10-21", max_retries=0)
            async with client:
                done = await client.chat.completions.create(model="gpt-4o-prod",
                                                            messages=MESSAGES)
                assert done.choices[0].message.content == TEXT.text
            assert up.requests[0].path == ("/openai/deployments/gpt-4o-prod/chat/completions"
                                           "?api-version=2024-10-21")

    run("asyncio", main())


def test_azure_content_filter_keeps_its_code_and_finish_reason_passes() -> None:
    async def main() -> None:
        async with (
            FakeAzure(answer=Filtered(text="")) as up,
            gateway(azure_config(up)) as gw,
            gw.client() as client,
        ):
            up.faults.append("content_filter")
            with pytest.raises(openai.BadRequestError) as caught:
                await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            assert caught.value.code == "content_filter"
            assert caught.value.body["param"] == "prompt"
            assert "content management policy" in caught.value.body["message"]
            done = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            assert done.choices[0].finish_reason == "content_filter"
            stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES,
                                                          stream=True)
            assert (await collect(stream)).finish_reason == "content_filter"

    run("asyncio", main())


def test_azure_429_retry_after_is_honoured() -> None:
    async def main() -> None:
        async with (
            FakeAzure(retry_after="3") as up,
            gateway(azure_config(up, extra="max_retries = 1")) as gw,
            gw.client() as client,
        ):
            waits: list[float] = []

            async def sleep(delay: float) -> None:
                waits.append(delay)

            provider = next(p for p in gw.app.providers if p.name == "azure")
            provider.retry = provider.retry.__class__(max_retries=1, sleep=sleep)
            up.faults.append("429")
            done = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            assert done.choices[0].message.content == TEXT.text
            assert waits == [3.0]

    run("asyncio", main())


def test_azure_wrong_deployment_is_model_not_found() -> None:
    async def main() -> None:
        async with (
            FakeAzure(deployments=("other",)) as up,
            gateway(azure_config(up)) as gw,
            gw.client() as client,
        ):
            with pytest.raises(openai.NotFoundError) as caught:
                await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            assert "deployment" in caught.value.body["message"]

    run("asyncio", main())


@pytest.mark.parametrize(("extra", "says"), [
    ('entra_id = true\ntenant_id = "t"', "needs tenant_id, client_id and client_secret"),
    ('api_key = ""', "needs api_key"),
    ('api_version = "2024-10-21&x=1"', "api_version"),
])
def test_azure_config_problems_are_named(extra: str, says: str) -> None:
    text = ('[[provider]]\nname = "az"\ntype = "azure"\nbase_url = "https://r.openai.azure.com"\n'
            'models = ["d"]\n')
    if not extra.startswith("api_key"):
        text += 'api_key = "k"\n'
    if not extra.startswith("api_version"):
        text += 'api_version = "2024-10-21"\n'
    config = decode(text + extra + "\n")
    with pytest.raises(ConfigError, match=says):
        build_provider(config.provider[0], ConnectionPool())
