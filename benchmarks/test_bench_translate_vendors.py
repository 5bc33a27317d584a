"""pytest-benchmark: the Gemini and Cohere stream translators per chunk, beside Claude's.

Run all three in one session: ``python -m pytest benchmarks/test_bench_translate.py
benchmarks/test_bench_translate_vendors.py -k per_chunk``. Each number feeds one event to a
live translator (past its first event), as ``test_bench_translate.py`` does for Claude: one
text delta, and one tool-argument fragment (Gemini sends whole ``functionCall`` parts, so its
tool number is one event carrying a whole call).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelmux.translate.cohere_stream import CohereStreamTranslator
from modelmux.translate.gemini_stream import GeminiStreamTranslator

pytest.importorskip("pytest_benchmark")

_NAMES = {"model": "gpt-4o", "completion_id": "chatcmpl-1", "created": 1, "include_usage": True}


def _gemini(parts: list[dict[str, Any]]) -> bytes:
    return json.dumps({"candidates": [{"content": {"role": "model", "parts": parts},
                                       "index": 0}],
                       "usageMetadata": {"promptTokenCount": 12}}).encode()


def _cohere(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


GEMINI_TEXT = _gemini([{"text": "word 7 "}])
GEMINI_CALL = _gemini([{"functionCall": {"name": "get_weather",
                                         "args": {"city": "Paris", "unit": "C"}}}])
COHERE_START = _cohere({"id": "r", "type": "message-start", "delta": {"message": {
    "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}})
COHERE_TEXT = _cohere({"type": "content-delta", "index": 0,
                       "delta": {"message": {"content": {"text": "word 7 "}}}})
COHERE_TOOL_START = _cohere({"type": "tool-call-start", "index": 0, "delta": {"message": {
    "tool_calls": {"id": "get_weather_1", "type": "function",
                   "function": {"name": "get_weather", "arguments": ""}}}}})
COHERE_ARGS = _cohere({"type": "tool-call-delta", "index": 0, "delta": {"message": {
    "tool_calls": {"function": {"arguments": "\"Par"}}}}})


def _live(cls: Any, events: list[bytes]) -> Any:
    translator = cls(**_NAMES)
    for data in events:
        translator.feed(data)
    return translator


def test_gemini_text_delta_per_chunk(benchmark: Any) -> None:
    translator = _live(GeminiStreamTranslator, [GEMINI_TEXT])
    assert len(benchmark(translator.feed, GEMINI_TEXT)) == 1


def test_gemini_function_call_per_chunk(benchmark: Any) -> None:
    translator = _live(GeminiStreamTranslator, [GEMINI_TEXT])
    assert len(benchmark(translator.feed, GEMINI_CALL)) == 2  # id and name, then arguments


def test_cohere_text_delta_per_chunk(benchmark: Any) -> None:
    translator = _live(CohereStreamTranslator, [COHERE_START, COHERE_TEXT])
    assert len(benchmark(translator.feed, COHERE_TEXT)) == 1


def test_cohere_arguments_delta_per_chunk(benchmark: Any) -> None:
    translator = _live(CohereStreamTranslator, [COHERE_START, COHERE_TOOL_START])
    assert len(benchmark(translator.feed, COHERE_ARGS)) == 1
