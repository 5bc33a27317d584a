"""count_tokens through the providers' own counting endpoints, driven by the official
``anthropic`` SDK against the gateway and loopback fakes of each wire format: Gemini and
Vertex ``:countTokens``, Cohere ``/v1/tokenize``, vLLM ``/tokenize``, llama.cpp
``/apply-template`` + ``/tokenize``; the estimate when a server has no such endpoint, and the
upstream's errors in Anthropic's shape."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from modelmux.api.token_estimate import IMAGE_TOKENS
from tests.fakes.cohere import FakeCohere
from tests.fakes.gemini import FakeGemini, words
from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.openai import FakeOpenAI
from tests.fakes.tokenize import FakeTokenizing, chatml, vllm_count
from tests.fakes.vertex import FakeVertex
from tests.messages.helpers import WEATHER, client
from tests.providers.harness import gateway
from tests.upstream import run

ALIAS = "claude-sonnet-4-5"
SYSTEM = "You answer in one short sentence."
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
    {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny, 21 degrees"}]},
]
PNG = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                   "data": "iVBORw0KGgo="}}
HEADER = "x-modelmux-token-count"


def _alias(model: str) -> str:
    return f'max_retries = 0\n[models]\n"{ALIAS}" = "{model}"\n'


def _compatible(origin: str, tokenize: str | None) -> str:
    key = f'tokenize = "{tokenize}"\n' if tokenize else ""
    return (f'[[provider]]\nname = "local"\ntype = "openai_compatible"\n'
            f'base_url = "{origin}/v1"\napi_key = "sk-up"\nmodels = ["llama"]\n{key}'
            + _alias("llama"))


async def _count(gw: Any, **kw: Any) -> tuple[int, Any]:
    async with client(gw) as sdk:
        raw = await sdk.messages.with_raw_response.count_tokens(model=ALIAS, **kw)
        return (await raw.parse()).input_tokens, raw.headers


def _counted(request: dict[str, Any]) -> int:
    return words([request.get(name) for name in ("contents", "systemInstruction", "tools")])


def test_gemini_counts_the_whole_request_with_count_tokens() -> None:
    async def main() -> None:
        async with FakeGemini() as fake, gateway(
                f'[[provider]]\nname = "gem"\ntype = "gemini"\nmodels = ["gemini-2.0-flash"]\n'
                f'api_key = "AIza-test"\nbase_url = "{fake.origin}"\n'
                + _alias("gemini-2.0-flash")) as gw:
            tokens, headers = await _count(gw, system=SYSTEM, messages=HISTORY, tools=[WEATHER])
            assert headers[HEADER] == "native" and headers["request-id"]
            (body,) = fake.count_bodies
            assert list(body) == ["generateContentRequest"]
            request = body["generateContentRequest"]
            assert request["model"] == "models/gemini-2.0-flash"
            assert SYSTEM in json.dumps(request["systemInstruction"])
            assert request["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
            assert "functionResponse" in json.dumps(request["contents"])
            assert "generationConfig" not in request and "toolConfig" not in request
            assert tokens == _counted(request) > 0
            assert fake.paths[-1] == {"model": "gemini-2.0-flash", "method": "countTokens"}
            assert fake.bodies == []  # nothing was generated

    run("asyncio", main())


def test_vertex_gemini_counts_with_the_flat_count_tokens_body() -> None:
    async def main() -> None:
        async with FakeGoogleOAuth() as oauth, FakeVertex(token_ok=oauth.valid) as vertex:
            toml = (f'[[provider]]\nname = "vtx"\ntype = "vertex"\nproject = "p"\n'
                    f'region = "us-east5"\nbase_url = "{vertex.origin}"\n'
                    f'models = ["sonnet", "gemini-2.0-flash"]\n'
                    f"credentials_json = '''{json.dumps(oauth.service_account_info())}'''\n"
                    + _alias("gemini-2.0-flash"))
            async with gateway(toml) as gw:
                tokens, headers = await _count(gw, system=SYSTEM, messages=HISTORY,
                                               tools=[WEATHER], tool_choice={"type": "any"})
            assert headers[HEADER] == "native"
            (body,) = vertex.gemini.count_bodies
            assert set(body) == {"contents", "systemInstruction", "tools"}  # no toolConfig
            assert tokens == _counted(body) > 0
            assert vertex.gemini.paths[-1] == {"project": "p", "region": "us-east5",
                                               "model": "gemini-2.0-flash",
                                               "method": "countTokens"}
            assert vertex.claude.bodies == []

    run("asyncio", main())


def _cohere_toml(origin: str) -> str:
    return (f'[[provider]]\nname = "co"\ntype = "cohere"\nmodels = ["command-r-plus"]\n'
            f'api_key = "co-test"\nbase_url = "{origin}"\n' + _alias("command-r-plus"))


def test_cohere_counts_the_prompt_text_with_its_tokenizer() -> None:
    async def main() -> None:
        async with FakeCohere() as fake, gateway(_cohere_toml(fake.origin)) as gw:
            tokens, headers = await _count(gw, system=SYSTEM, messages=HISTORY, tools=[WEATHER])
            assert headers[HEADER] == "native; text"
            (body,) = fake.tokenize_bodies
            assert body["model"] == "command-r-plus"
            for part in (SYSTEM, "Weather in Paris?", "get_weather", '"city":"Paris"',
                         "sunny, 21 degrees", "Weather in a city"):
                assert part in body["text"], part
            assert tokens == len(body["text"].split())
            assert fake.bodies == []

            long = "word " * 15_000  # 75,000 characters: two tokenize calls
            image = [{"role": "user", "content": [PNG, {"type": "text", "text": long}]}]
            tokens, headers = await _count(gw, messages=image)
            sent = fake.tokenize_bodies[1:]
            assert len(sent) == 2 and all(len(b["text"]) <= 65536 for b in sent)
            assert tokens == 15_000 + IMAGE_TOKENS

    run("asyncio", main())


def test_vllm_counts_the_translated_chat_with_tokenize() -> None:
    async def main() -> None:
        async with FakeTokenizing("vllm", api_key="sk-up") as fake, gateway(
                _compatible(fake.origin, "vllm")) as gw:
            tokens, headers = await _count(gw, system=SYSTEM, messages=HISTORY, tools=[WEATHER])
            assert headers[HEADER] == "native"
            ((path, body),) = fake.counted
            assert path == "/tokenize" and body["model"] == "llama"
            assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant",
                                                             "tool"]
            assert body["tools"][0]["function"]["name"] == "get_weather"
            assert tokens == vllm_count(body)
            assert fake.raw_bodies == []  # no chat call

    run("asyncio", main())


def test_llamacpp_applies_its_template_then_tokenizes() -> None:
    async def main() -> None:
        async with FakeTokenizing("llamacpp", api_key="sk-up") as fake, gateway(
                _compatible(fake.origin, "llamacpp")) as gw:
            tokens, headers = await _count(gw, system=SYSTEM, messages=HISTORY, tools=[WEATHER])
            assert headers[HEADER] == "native"
            (template, template_body), (tokenize, tokenize_body) = fake.counted
            assert (template, tokenize) == ("/apply-template", "/tokenize")
            assert template_body["tools"][0]["function"]["name"] == "get_weather"
            assert tokenize_body == {"content": chatml(template_body), "add_special": True,
                                     "parse_special": True}
            assert tokens == len(chatml(template_body).split()) + 1

    run("asyncio", main())


@pytest.mark.parametrize("flavour", ["vllm", "llamacpp"])
def test_a_server_without_tokenize_falls_back_to_the_estimate(flavour: str) -> None:
    async def main() -> None:
        async with FakeOpenAI(api_key="sk-up") as fake, gateway(
                _compatible(fake.origin, flavour)) as gw:
            tokens, headers = await _count(gw, messages=HISTORY)
            assert headers[HEADER] == "estimate; tokenizer=chars; fallback=404"
            assert tokens > 0

    run("asyncio", main())


def test_without_the_tokenize_key_nothing_is_asked() -> None:
    async def main() -> None:
        async with FakeTokenizing("vllm", api_key="sk-up") as fake, gateway(
                _compatible(fake.origin, None)) as gw:
            _, headers = await _count(gw, messages=HISTORY)
            assert headers[HEADER] == "estimate; tokenizer=chars"
            assert fake.counted == []

    run("asyncio", main())


def test_count_errors_come_back_in_anthropics_shape() -> None:
    async def main() -> None:
        async with FakeTokenizing("vllm", api_key="sk-up") as fake, gateway(
                _compatible(fake.origin, "vllm")) as gw, client(gw) as sdk:
            fake.faults.append("400")
            with pytest.raises(anthropic.BadRequestError) as bad:
                await sdk.messages.count_tokens(model=ALIAS, messages=HISTORY)
            assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
            assert "fake 400" in bad.value.body["error"]["message"]  # type: ignore[index]
            fake.faults.append("bad_count")
            with pytest.raises(anthropic.InternalServerError) as broken:
                await sdk.messages.count_tokens(model=ALIAS, messages=HISTORY)
            assert broken.value.body["error"]["type"] == "api_error"  # type: ignore[index]
            counted = await sdk.messages.count_tokens(model=ALIAS, messages=HISTORY)
            assert counted.input_tokens == vllm_count(fake.counted[-1][1])  # still serving
        async with FakeGemini() as gem, gateway(
                f'[[provider]]\nname = "gem"\ntype = "gemini"\nmodels = ["gemini-2.0-flash"]\n'
                f'api_key = "AIza-test"\nbase_url = "{gem.origin}"\n'
                + _alias("gemini-2.0-flash")) as gw, client(gw) as sdk:
            gem.faults.append("429")
            with pytest.raises(anthropic.RateLimitError) as limited:
                await sdk.messages.count_tokens(model=ALIAS, messages=HISTORY)
            assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
            assert limited.value.response.headers["request-id"]

    run("asyncio", main())


def test_fields_the_translation_drops_are_named() -> None:
    async def main() -> None:
        async with FakeCohere() as fake, gateway(_cohere_toml(fake.origin)) as gw:
            _, headers = await _count(gw, messages=HISTORY,
                                      thinking={"type": "enabled", "budget_tokens": 1024})
            assert headers[HEADER] == "native; text"
            assert headers["x-modelmux-dropped-fields"] == "thinking"

    run("asyncio", main())
