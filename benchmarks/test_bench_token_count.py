"""pytest-benchmark: CPU per count_tokens estimate with a loaded tokenizer, beside the
character estimate it replaces.

Run: ``python -m pytest benchmarks/test_bench_token_count.py``. The prompt is a short agent
turn (a 1.2 kB system prompt, one tool, three messages, about 2 kB of text). ``[count]`` is
the tokenizer's work on the prompt's texts (what runs in the worker thread); ``estimate`` is
``TokenEstimator.count`` whole, on a running loop, with its thread hop.
"""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from modelmux.api.token_estimate import TokenEstimator, _total, by_characters, prompt_of
from modelmux.api.tokenizer_files import CLAUDE_LEGACY_DATA, o200k_counter, tokenizer_json_counter
from modelmux.schemas.anthropic_request import count_decoder

pytest.importorskip("pytest_benchmark")
pytest.importorskip("tokenizers")
pytest.importorskip("tiktoken")

SYSTEM = ("You are a careful coding assistant working in a repository. Read files before "
          "editing them, keep changes small, explain what you changed and why. ") * 8
BODY = msgspec.json.encode({
    "model": "m", "system": SYSTEM,
    "tools": [{"name": "read_file", "description": "Read a file of the repository",
               "input_schema": {"type": "object", "properties": {"path": {"type": "string"}},
                                "required": ["path"]}}],
    "messages": [
        {"role": "user", "content": "Why does test_layers fail after my change to api/app.py?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "read_file",
                                           "input": {"path": "modelmux/api/app.py"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": "import asyncio\nfrom modelmux.cli import x\n"
                                                 * 6}]},
    ]})
REQUEST = count_decoder.decode(BODY)
COUNTERS = {"claude-legacy": lambda: tokenizer_json_counter(CLAUDE_LEGACY_DATA),
            "o200k_base": o200k_counter}


def test_chars_estimate(benchmark) -> None:  # type: ignore[no-untyped-def]
    assert benchmark(lambda: by_characters(prompt_of(REQUEST))) > 100


@pytest.mark.parametrize("name", list(COUNTERS))
def test_count(benchmark, name: str) -> None:  # type: ignore[no-untyped-def]
    counter = COUNTERS[name]()
    assert benchmark(lambda: _total(counter, prompt_of(REQUEST).texts)) > 100


def test_estimate_with_a_configured_tokenizer(benchmark) -> None:  # type: ignore[no-untyped-def]
    """The whole call on a running loop: prompt, thread hop, tokenizer, frame."""
    estimator = TokenEstimator(files={("local", None): CLAUDE_LEGACY_DATA})
    loop = asyncio.new_event_loop()
    try:
        tokens, name = loop.run_until_complete(estimator.count("m", REQUEST, provider="local"))
        assert name == "data/claude-legacy-tokenizer.json.gz" and tokens > 100
        benchmark(lambda: loop.run_until_complete(
            estimator.count("m", REQUEST, provider="local")))
    finally:
        loop.close()
