"""``modelmux serve`` answering the official ``anthropic`` SDK: a Claude Code-like tool loop
under a Claude model name mapped by ``[models]`` to the mock."""

from __future__ import annotations

from pathlib import Path

import anthropic

from tests.e2e.proc import serve_config

CONFIG = """
[[provider]]
name = "demo"
type = "mock"
models = ["mock"]
text = "It is sunny."
chunks = 4

[models]
"claude-sonnet-4-5" = "mock"
"""
WEATHER = {"name": "weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def test_the_sdk_runs_a_tool_loop_and_counts_tokens(tmp_path: Path) -> None:
    proc = serve_config(tmp_path, CONFIG)
    try:
        with anthropic.Anthropic(base_url=proc.url, api_key="unused", max_retries=0,
                                 timeout=10) as sdk:
            messages: list[dict[str, object]] = [{"role": "user", "content": "Weather?"}]
            with sdk.messages.stream(model="claude-sonnet-4-5", max_tokens=100,
                                     messages=messages, tools=[WEATHER]) as stream:
                first = stream.get_final_message()
            assert first.stop_reason == "tool_use" and first.model == "claude-sonnet-4-5"
            call = first.content[0]
            assert call.type == "tool_use"
            messages += [{"role": "assistant", "content": [call.model_dump()]},
                         {"role": "user", "content": [{"type": "tool_result",
                                                       "tool_use_id": call.id,
                                                       "content": "sun"}]}]
            done = sdk.messages.create(model="claude-sonnet-4-5", max_tokens=100,
                                       messages=messages, tools=[WEATHER],
                                       tool_choice={"type": "none"})
            assert done.stop_reason == "end_turn"
            assert done.content[0].type == "text" and done.content[0].text == "It is sunny."
            counted = sdk.messages.count_tokens(model="claude-sonnet-4-5", messages=messages)
            assert counted.input_tokens > 0
    finally:
        assert proc.stop() == 0
