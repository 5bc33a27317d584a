"""count_tokens with a provider's ``tokenizer.json`` and with the shipped legacy Claude
tokenizer: which deployment gets which tokenizer, the chat frame each family adds, and a file
that cannot be used (unreadable, not a tokenizer, the extra missing) logged by name with the
count falling back to characters."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
from pathlib import Path

import msgspec
import pytest

from modelmux.api import token_estimate
from modelmux.api.token_estimate import TokenEstimator, tokenizer_files
from modelmux.api.token_families import CLAUDE_LEGACY, O200K, TokenFamily, family_of
from modelmux.api.tokenizer_files import (
    CLAUDE_LEGACY_DATA,
    CLAUDE_LEGACY_SHA256,
    label_of,
    load_tokenizer_json,
    tokenizer_json_counter,
)
from modelmux.config.providers import MockProviderConfig, OpenAICompatibleConfig
from modelmux.schemas.anthropic_request import count_decoder
from tests.messages.word_tokenizer import save_word_tokenizer, words
from tests.upstream import run

TEXT = "hello world, how are you?"
WEATHER = {"name": "weather", "description": "Weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def request(**fields: object) -> object:
    body = {"model": "m", "messages": [{"role": "user", "content": TEXT}], **fields}
    return count_decoder.decode(msgspec.json.encode(body))


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_tokenizer_json_counts_its_tokens(tmp_path: Path, gzipped: bool) -> None:
    path = save_word_tokenizer(tmp_path / ("t.json.gz" if gzipped else "t.json"), gzipped)
    assert tokenizer_json_counter(path)([TEXT, TEXT]) == 2 * words(TEXT) == 14
    assert tokenizer_json_counter(path)([]) == 0


def test_the_shipped_claude_tokenizer_is_the_sdks_file() -> None:
    with gzip.open(CLAUDE_LEGACY_DATA, "rb") as data:
        assert hashlib.sha256(data.read()).hexdigest() == CLAUDE_LEGACY_SHA256
    licence = (CLAUDE_LEGACY_DATA.parent / "LICENSE-anthropic-tokenizer").read_text()
    assert CLAUDE_LEGACY_SHA256 in licence and "Copyright 2023 Anthropic, PBC." in licence
    tokenizer = load_tokenizer_json(CLAUDE_LEGACY_DATA)
    assert tokenizer.get_vocab_size() == 65000
    # as the SDK's own test: "hello world" is two tokens
    assert tokenizer.encode("hello world", add_special_tokens=False).tokens == ["hello", "Ġworld"]


@pytest.mark.parametrize(("model", "family"), [
    ("claude-sonnet-4-5", CLAUDE_LEGACY), ("claude-3-5-haiku@20241022", CLAUDE_LEGACY),
    ("anthropic.claude-3-5-sonnet-20241022-v2:0", CLAUDE_LEGACY),
    ("us.anthropic.claude-sonnet-4-20250514-v1:0", CLAUDE_LEGACY),
    ("anthropic/claude-3.5-sonnet", CLAUDE_LEGACY), ("Claude-2.1", CLAUDE_LEGACY),
    ("gpt-4o-mini", O200K), ("openai/gpt-5", O200K),
    ("claudette", None), ("claude", None), ("llama-3.1-8b", None), ("gemini-2.0-flash", None),
])
def test_model_families(model: str, family: TokenFamily | None) -> None:
    assert family_of(model) is family


def test_family_frames() -> None:
    # OpenAI frames every message, the system prompt too
    assert O200K.overhead(2, system=True, tools=False, forced=False) == 4 * 2 + 3
    # Claude's system prompt goes first, unframed; a tools prompt when there are tools
    assert CLAUDE_LEGACY.overhead(2, system=True, tools=False, forced=False) == 4 + 4
    assert CLAUDE_LEGACY.overhead(1, system=False, tools=True, forced=False) == 4 + 4 + 346
    assert CLAUDE_LEGACY.overhead(1, system=False, tools=True, forced=True) == 4 + 4 + 313


def test_labels_name_the_folder_and_file() -> None:
    assert label_of(Path("/models/Llama-3.1-8B/tokenizer.json")) == "Llama-3.1-8B/tokenizer.json"
    assert label_of(Path("/m/Qwen 2.5;x\r\n/tok.json.gz")) == "Qwen_2.5_x__/tok.json.gz"
    assert label_of(Path("tokenizer.json")) == "tokenizer.json"


def test_configured_files_by_provider_and_model(tmp_path: Path) -> None:
    providers = [
        OpenAICompatibleConfig(name="local", models=["a", "b"], base_url="http://x/v1",
                               tokenizer={"a": "~/a.json"}),
        OpenAICompatibleConfig(name="vllm", models=["c"], base_url="http://x/v1",
                               tokenizer=str(tmp_path / "c.json")),
        MockProviderConfig(name="mock", models=["m"]),
    ]
    assert tokenizer_files(providers) == {("local", "a"): Path("~/a.json").expanduser(),
                                          ("vllm", None): tmp_path / "c.json"}


def test_counts_with_the_configured_file_then_the_family(tmp_path: Path) -> None:
    one = save_word_tokenizer(tmp_path / "Llama" / "tokenizer.json")
    other = save_word_tokenizer(tmp_path / "Qwen" / "tokenizer.json.gz", gzipped=True)
    estimator = TokenEstimator(files={("local", None): one, ("local", "qwen"): other})

    async def main() -> None:
        asked = request(system="Be brief.")
        framed = words(TEXT) + words("Be brief.") + 5 * 2 + 3
        assert await estimator.count("llama", asked, provider="local") == (
            framed, "Llama/tokenizer.json")
        assert await estimator.count("qwen", asked, provider="local") == (
            framed, "Qwen/tokenizer.json.gz")
        # the provider's file wins over the claude family; elsewhere the family decides
        assert (await estimator.count("claude-sonnet-4-5", asked, provider="local"))[1] == \
            "Llama/tokenizer.json"
        claude = await estimator.count("claude-sonnet-4-5", asked, provider="other")
        legacy = load_tokenizer_json(CLAUDE_LEGACY_DATA)
        text = sum(len(legacy.encode(t, add_special_tokens=False)) for t in (TEXT, "Be brief."))
        assert claude == (text + 4 + 4, "claude-legacy")
        assert await estimator.count("llama", asked, provider="other") == (9, "chars")

    run("asyncio", main())


def test_claude_counts_the_tools_prompt() -> None:
    async def main() -> None:
        estimator = TokenEstimator()
        plain, _ = await estimator.count("claude-sonnet-4-5", request())
        auto, _ = await estimator.count("claude-sonnet-4-5", request(tools=[WEATHER]))
        forced, _ = await estimator.count("claude-sonnet-4-5", request(
            tools=[WEATHER], tool_choice={"type": "any"}))
        assert auto - forced == 346 - 313
        assert auto - plain > 346  # the tool's name, description and schema count too

    run("asyncio", main())


def test_each_file_loads_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_word_tokenizer(tmp_path / "tokenizer.json")
    loads: list[Path] = []

    def counting(where: Path) -> token_estimate.Counter:
        loads.append(where)
        return tokenizer_json_counter(where)

    monkeypatch.setattr(token_estimate, "tokenizer_json_counter", counting)
    estimator = TokenEstimator(files={("a", None): path, ("b", None): path})

    async def main() -> None:
        counts = await asyncio.gather(*(estimator.count("m", request(), provider=name)
                                        for name in ("a", "b", "a", "b")))
        assert {count for count, _ in counts} == {words(TEXT) + 5 + 3}

    run("asyncio", main())
    assert loads == [path]


@pytest.mark.parametrize(("content", "reason"), [
    (None, "No such file"),
    (b"{not json", "not a Hugging Face tokenizer.json"),
    (b'{"version": "1.0"}', "not a Hugging Face tokenizer.json"),
    (b"\xff\xfe", "codec can't decode"),
])
def test_an_unusable_file_is_logged_by_name(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                            content: bytes | None, reason: str) -> None:
    path = tmp_path / "broken" / "tokenizer.json"
    if content is not None:
        path.parent.mkdir()
        path.write_bytes(content)
    estimator = TokenEstimator(files={("local", None): path})

    async def main() -> None:
        with caplog.at_level(logging.WARNING, "modelmux.api"):
            for _ in range(2):
                assert await estimator.count("m", request(), provider="local") == (7, "chars")

    run("asyncio", main())
    [record] = [r for r in caplog.records if "cannot load" in r.getMessage()]
    assert str(path) in record.getMessage() and reason in record.getMessage()


def test_without_the_extra(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = save_word_tokenizer(tmp_path / "tokenizer.json")
    estimator = TokenEstimator(files={("local", None): path})
    estimator.hf_available = False  # as without the tokenizers extra

    async def main() -> None:
        with caplog.at_level(logging.WARNING, "modelmux.api"):
            assert await estimator.count("m", request(), provider="local") == (7, "chars")
            assert await estimator.count("claude-sonnet-4-5", request()) == (7, "chars")

    run("asyncio", main())
    [record] = [r for r in caplog.records if "cannot load" in r.getMessage()]
    assert str(path) in record.getMessage()
    assert "pip install 'modelmux[tokenizers]'" in record.getMessage()
