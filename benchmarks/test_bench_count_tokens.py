"""pytest-benchmark: the gateway's own CPU for one ``/v1/messages/count_tokens`` request, the
upstream's time left out: the estimate from characters (no counting endpoint, or ``tokenize``
unset) beside the native counts (the door's translation, the count body, reading the answer).

Run: ``python -m pytest benchmarks/test_bench_count_tokens.py
--benchmark-timer=time.process_time``. The request is a Claude Code-like turn: a 2,000-character
system prompt, ten turns with a tool call and its result, three tools.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelmux.api.count_tokens import count_input
from modelmux.api.token_estimate import by_characters, prompt_of
from modelmux.config.providers import GeminiConfig
from modelmux.providers.gemini import GeminiProvider
from modelmux.providers.token_count import (
    cohere_pieces,
    cohere_tokenize_body,
    gemini_count_body,
    token_list_length,
    total_tokens,
    vllm_body,
    vllm_count,
)
from modelmux.schemas.anthropic_request import count_decoder
from modelmux.upstream import ConnectionPool

pytest.importorskip("pytest_benchmark")


def _body() -> bytes:
    tools = [{"name": f"tool_{i}", "description": "Does a thing with a path. " * 4,
              "input_schema": {"type": "object", "properties": {
                  "path": {"type": "string"}, "limit": {"type": "integer"}},
                  "required": ["path"]}} for i in range(3)]
    messages: list[dict[str, Any]] = []
    for i in range(10):
        messages += [
            {"role": "user", "content": f"Please look at file {i} and tell me what it does."},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Reading it."},
                {"type": "tool_use", "id": f"toolu_{i}", "name": "tool_0",
                 "input": {"path": f"src/file_{i}.py", "limit": 200}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i}",
                                          "content": "def main():\n    return 0\n" * 10}]},
        ]
    messages.append({"role": "user", "content": "Summarise."})
    return json.dumps({"model": "claude-sonnet-4-5", "system": "You are a coding agent. " * 87,
                       "messages": messages, "tools": tools}).encode()


BODY = _body()
ANSWERS = {"gemini": b'{"totalTokens": 1834, "promptTokensDetails": []}',
           "vllm": b'{"count": 1834, "max_model_len": 32768, "tokens": [' +
                   b",".join(b"1" for _ in range(1834)) + b"]}",
           "cohere": b'{"tokens": [' + b",".join(b"1" for _ in range(1834)) + b"]}"}


def _estimate() -> int:
    return by_characters(prompt_of(count_decoder.decode(BODY)))


def _gemini(provider: GeminiProvider) -> int:
    prompt, _ = count_input(count_decoder.decode(BODY))
    gemini_count_body(provider.request_json(prompt.chat), "gemini-2.0-flash")
    return total_tokens(ANSWERS["gemini"], "gem")


def _vllm() -> int:
    prompt, _ = count_input(count_decoder.decode(BODY))
    vllm_body("qwen", prompt)
    return vllm_count(ANSWERS["vllm"], "vllm")


def _cohere() -> int:
    prompt, _ = count_input(count_decoder.decode(BODY))
    tokens = prompt.media_tokens
    for piece in cohere_pieces(prompt.texts, "co"):
        cohere_tokenize_body(piece, "command-a")
        tokens += token_list_length(ANSWERS["cohere"], "co")
    return tokens


def test_estimate_from_characters(benchmark) -> None:  # type: ignore[no-untyped-def]
    assert benchmark(_estimate) > 0


def test_native_gemini(benchmark) -> None:  # type: ignore[no-untyped-def]
    config = GeminiConfig(name="gem", models=["gemini-2.0-flash"], api_key="k",
                          base_url="http://127.0.0.1:1")
    provider = GeminiProvider.from_config(config, ConnectionPool())
    assert benchmark(_gemini, provider) == 1834


def test_native_vllm(benchmark) -> None:  # type: ignore[no-untyped-def]
    assert benchmark(_vllm) == 1834


def test_native_cohere(benchmark) -> None:  # type: ignore[no-untyped-def]
    assert benchmark(_cohere) == 1834
