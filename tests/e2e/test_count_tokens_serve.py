"""``modelmux serve`` as a process answering the official ``anthropic`` SDK's count_tokens with
each provider's own counting endpoint (fake Gemini, Cohere, vLLM and llama.cpp servers), and
with the estimate for a server configured with ``tokenize`` that has no such endpoint."""

from __future__ import annotations

import asyncio
from pathlib import Path

import anthropic

from tests.e2e.proc import serve_config
from tests.fakes.cohere import FakeCohere
from tests.fakes.gemini import FakeGemini
from tests.fakes.openai import FakeOpenAI
from tests.fakes.tokenize import FakeTokenizing, vllm_count
from tests.upstream import run

MESSAGES = [{"role": "user", "content": "How many tokens is this prompt?"}]


def test_count_tokens_asks_each_provider_through_a_real_serve(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeGemini() as gem, FakeCohere() as co, \
                FakeTokenizing("vllm", model="qwen") as vllm, \
                FakeTokenizing("llamacpp") as llama, FakeOpenAI() as plain:
            config = f"""
[[provider]]
name = "gem"
type = "gemini"
api_key = "AIza-test"
base_url = "{gem.origin}"
models = ["gemini-2.0-flash"]

[[provider]]
name = "co"
type = "cohere"
api_key = "co-test"
base_url = "{co.origin}"
models = ["command-a-03-2025"]

[[provider]]
name = "vllm"
type = "openai_compatible"
base_url = "{vllm.origin}/v1"
models = ["qwen"]
tokenize = "vllm"

[[provider]]
name = "llama"
type = "openai_compatible"
base_url = "{llama.origin}"
models = ["gguf"]
tokenize = "llamacpp"

[[provider]]
name = "plain"
type = "openai_compatible"
base_url = "{plain.origin}/v1"
models = ["other"]
tokenize = "vllm"
"""
            proc = await asyncio.to_thread(serve_config, tmp_path, config)
            try:
                sdk = anthropic.AsyncAnthropic(base_url=proc.url, api_key="unused",
                                               max_retries=0, timeout=20.0)
                async with sdk:
                    seen = {}
                    for model in ("gemini-2.0-flash", "command-a-03-2025", "qwen", "gguf",
                                  "other"):
                        raw = await sdk.messages.with_raw_response.count_tokens(
                            model=model, system="Be brief.", messages=MESSAGES)
                        seen[model] = ((await raw.parse()).input_tokens,
                                       raw.headers["x-modelmux-token-count"])
            finally:
                assert await asyncio.to_thread(proc.stop) == 0
            assert seen["gemini-2.0-flash"] == (9, "native")  # system 2, turn 6, its role 1
            assert seen["command-a-03-2025"] == (8, "native; text")
            assert seen["qwen"] == (vllm_count(vllm.counted[0][1]), "native")
            assert [path for path, _ in llama.counted] == ["/apply-template", "/tokenize"]
            assert seen["gguf"][1] == "native"
            assert seen["other"][1] == "estimate; tokenizer=chars; fallback=404"
            assert len(gem.count_bodies) == len(co.tokenize_bodies) == 1

    run("asyncio", main(), timeout=60.0)
