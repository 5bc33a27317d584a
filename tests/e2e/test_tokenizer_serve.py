"""``modelmux serve`` counting tokens for the official ``anthropic`` SDK with a provider's own
``tokenizer.json`` (and, for a Claude model behind an OpenAI-compatible server, the shipped
legacy Claude tokenizer): the header names the tokenizer, the provider is never called, and a
file that turns out not to be a tokenizer is logged by name while the gateway keeps counting
from characters."""

from __future__ import annotations

from pathlib import Path

import anthropic

from modelmux.api.tokenizer_files import CLAUDE_LEGACY_DATA, load_tokenizer_json
from tests.e2e.proc import serve_config
from tests.e2e.threaded import threaded
from tests.fakes.openai import FakeOpenAI
from tests.messages.word_tokenizer import save_word_tokenizer, words

SYSTEM = "You are terse."
QUESTION = "hello world, how are you?"


def test_the_sdk_counts_with_the_configured_tokenizer(tmp_path: Path) -> None:
    llama = save_word_tokenizer(tmp_path / "Llama-3.1-8B-Instruct" / "tokenizer.json")
    broken = tmp_path / "broken" / "tokenizer.json"
    broken.parent.mkdir()
    broken.write_text('{"version": "1.0"}')
    with threaded(FakeOpenAI()) as upstream:
        config = f"""
[[provider]]
name = "local"
type = "openai_compatible"
base_url = "{upstream.origin}/v1"
models = ["llama-3.1-8b", "claude-3-5-sonnet", "mystery"]

[provider.tokenizer]
"llama-3.1-8b" = "{llama}"
"mystery" = "{broken}"

[models]
"claude-sonnet-4-5" = "local/llama-3.1-8b"
"""
        proc = serve_config(tmp_path, config)
        try:
            with anthropic.Anthropic(base_url=proc.url, api_key="unused", max_retries=0,
                                     timeout=30) as sdk:
                raw = sdk.messages.with_raw_response.count_tokens(
                    model="claude-sonnet-4-5", system=SYSTEM,
                    messages=[{"role": "user", "content": QUESTION}])
                assert raw.headers["x-modelmux-token-count"] == (
                    "estimate; tokenizer=Llama-3.1-8B-Instruct/tokenizer.json")
                # 2 messages framed at 5 tokens each, 3 opening the reply
                assert raw.parse().input_tokens == words(SYSTEM) + words(QUESTION) + 5 * 2 + 3

                raw = sdk.messages.with_raw_response.count_tokens(
                    model="claude-3-5-sonnet", messages=[{"role": "user", "content": QUESTION}])
                assert raw.headers["x-modelmux-token-count"] == "estimate; tokenizer=claude-legacy"
                legacy = load_tokenizer_json(CLAUDE_LEGACY_DATA)
                text = len(legacy.encode(QUESTION, add_special_tokens=False))
                assert raw.parse().input_tokens == text + 4 + 4

                raw = sdk.messages.with_raw_response.count_tokens(
                    model="mystery", messages=[{"role": "user", "content": "x" * 40}])
                assert raw.headers["x-modelmux-token-count"] == "estimate; tokenizer=chars"
                assert raw.parse().input_tokens == 10
                assert proc.wait_for_log(f"cannot load the broken/tokenizer.json tokenizer "
                                         f"from {broken}")
                again = sdk.messages.count_tokens(
                    model="claude-sonnet-4-5", messages=[{"role": "user", "content": QUESTION}])
                assert again.input_tokens == words(QUESTION) + 5 + 3
            assert not upstream.requests  # counting never calls the provider
        finally:
            assert proc.stop() == 0
