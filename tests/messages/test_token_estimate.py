"""count_tokens' estimate: the shipped o200k_base ranks are OpenAI's file and tokenize as
OpenAI's models do; GPT-4o-family deployments are counted with them through the SDK, every
other family (or a missing ``tiktoken``, or a damaged rank file) from characters."""

from __future__ import annotations

import gzip
import hashlib
import logging
from pathlib import Path

import pytest

from modelmux.api.token_estimate import TokenEstimator, uses_o200k
from modelmux.api.tokenizer_files import O200K_DATA, O200K_SHA256, load_o200k
from modelmux.schemas.anthropic_request import count_decoder
from tests.fakes.openai import FakeOpenAI
from tests.messages.helpers import client
from tests.providers.harness import gateway
from tests.upstream import run

HELLO = b'{"model": "m", "messages": [{"role": "user", "content": "hello world"}]}'


def test_the_shipped_ranks_are_openais_o200k_base_file() -> None:
    with gzip.open(O200K_DATA, "rb") as data:
        assert hashlib.sha256(data.read()).hexdigest() == O200K_SHA256


def test_o200k_tokenizes_as_openai_does() -> None:
    encoding = load_o200k()
    assert encoding.encode_ordinary("hello world") == [24912, 2375]
    text = "Héllo – wörld ✓ 日本語.\n\tdef f(x): return x**2  # it's 100%"
    assert encoding.decode(encoding.encode_ordinary(text)) == text
    assert encoding.n_vocab == 200019


@pytest.mark.parametrize(("model", "o200k"), [
    ("gpt-4o", True), ("gpt-4o-mini-2024-07-18", True), ("openai/gpt-4.1", True),
    ("o3", True), ("o4-mini", True), ("gpt-5-2025-08-07", True), ("GPT-OSS-120B", True),
    ("gpt-4", False), ("gpt-3.5-turbo", False), ("o1x", False), ("llama-3.1-8b", False),
    ("claude-sonnet-4-5", False), ("gemini-2.0-flash", False),
])
def test_which_models_use_o200k(model: str, o200k: bool) -> None:
    assert uses_o200k(model) is o200k


def test_counts_with_o200k_and_falls_back_to_characters(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        request = count_decoder.decode(HELLO)
        # 2 tokens of text, 4 for the message and its role, 3 priming the reply
        assert await TokenEstimator().count("gpt-4o", request) == (9, "o200k_base")
        assert await TokenEstimator().count("llama", request) == (3, "chars")
        missing = TokenEstimator()
        missing.available = False  # as without the tokenizers extra
        assert await missing.count("gpt-4o", request) == (3, "chars")
        broken = tmp_path / "o200k.gz"
        broken.write_bytes(b"not gzip")
        with caplog.at_level(logging.WARNING, "modelmux.api"):
            assert await TokenEstimator(broken).count("gpt-4o", request) == (3, "chars")
        assert "cannot load the o200k_base tokenizer" in caplog.text

    run("asyncio", main())


def test_sdk_count_tokens_names_the_tokenizer() -> None:
    async def main() -> None:
        async with FakeOpenAI(api_key="sk-up") as fake:
            toml = (f'[[provider]]\nname = "openai"\ntype = "openai"\napi_key = "sk-up"\n'
                    f'base_url = "{fake.origin}/v1"\nmodels = ["gpt-4o-mini", "llama"]\n'
                    f'[models]\n"claude-sonnet-4-5" = "gpt-4o-mini"\n')
            async with gateway(toml) as gw, client(gw) as sdk:
                system = "You are terse."
                raw = await sdk.messages.with_raw_response.count_tokens(
                    model="claude-sonnet-4-5", system=system,
                    messages=[{"role": "user", "content": "hello world"}])
                assert raw.headers["x-modelmux-token-count"] == "estimate; tokenizer=o200k_base"
                words = len(load_o200k().encode_ordinary(system))
                assert (await raw.parse()).input_tokens == 9 + 4 + words
                raw = await sdk.messages.with_raw_response.count_tokens(
                    model="llama", messages=[{"role": "user", "content": "x" * 40}])
                assert raw.headers["x-modelmux-token-count"] == "estimate; tokenizer=chars"
                assert (await raw.parse()).input_tokens == 10
            assert not fake.requests  # counting never calls the provider

    run("asyncio", main())
