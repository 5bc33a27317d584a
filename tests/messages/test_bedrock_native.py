"""The Messages door to Claude on Bedrock: InvokeModel with the client's own body, the event
stream's base64 ``chunk`` events turned back into Anthropic SSE, CountTokens, and Bedrock's
errors in Anthropic's shape. The fake checks every SigV4 signature."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmux.codec import _eventstream_py
from modelmux.providers.bedrock_claude import InvokeStreamRelay, invoke_body, is_claude
from tests.fakes.answers import TOOLS
from tests.fakes.bedrock import FakeBedrock, chunk, claude_docs, exception
from tests.fakes.claude import COUNTED_TOKENS
from tests.messages.helpers import USER, WEATHER, client, events, post
from tests.messages.test_native_sdk import UNKNOWN, raw_request
from tests.providers.harness import Gateway, gateway
from tests.twins import import_twin, twin_params
from tests.upstream import run

ALIAS = "claude-sonnet-4-5"
MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
KEYS = 'access_key_id = "AKIDFAKE000000000001"\nsecret_access_key = "fake/secret"\n'
THINKING: list[dict[str, Any]] = [
    {"type": "message_start", "message": {
        "id": "msg_bdrk_01", "type": "message", "role": "assistant", "model": MODEL,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 30, "output_tokens": 1, "cache_read_input_tokens": 5}}},
    {"type": "content_block_start", "index": 0,
     "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
    {"type": "content_block_delta", "index": 0,
     "delta": {"type": "thinking_delta", "thinking": "Paris → weather tool."}},
    {"type": "content_block_delta", "index": 0,
     "delta": {"type": "signature_delta", "signature": "EqQBCkYIAxgCIkD=="}},
    {"type": "content_block_stop", "index": 0},
    {"type": "x_future_event", "payload": {"n": [1, 2.5]}},
    {"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_bdrk_1", "name": "get_weather", "input": {}}},
    {"type": "content_block_delta", "index": 1,
     "delta": {"type": "input_json_delta", "partial_json": '{"city": "Pa'}},
    {"type": "content_block_delta", "index": 1,
     "delta": {"type": "input_json_delta", "partial_json": 'ris"}'}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
     "usage": {"output_tokens": 21}},
    {"type": "message_stop", "amazon-bedrock-invocationMetrics": {
        "inputTokenCount": 35, "outputTokenCount": 21, "invocationLatency": 400,
        "firstByteLatency": 90}},
]


@contextlib.asynccontextmanager
async def bedrock_claude() -> AsyncIterator[tuple[Gateway, FakeBedrock]]:
    async with FakeBedrock(answer=TOOLS) as fake:
        toml = (f'[[provider]]\nname = "br"\ntype = "bedrock"\nregion = "us-east-1"\n'
                f'models = ["{MODEL}"]\nbase_url = "{fake.origin}"\n{KEYS}max_retries = 0\n'
                f'[models]\n"{ALIAS}" = "{MODEL}"\n')
        async with gateway(toml) as gw:
            yield gw, fake


def client_frames(docs: list[dict[str, Any]], model: str) -> list[tuple[str, Any]]:
    """What the client should read for ``docs``: every event, ``message_start`` renamed."""
    out = []
    for doc in docs:
        if doc["type"] == "message_start":
            doc = {**doc, "message": {**doc["message"], "model": model}}
        out.append((doc["type"], doc))
    return out


def test_claude_model_ids() -> None:
    assert is_claude("anthropic.claude-3-5-sonnet-20241022-v2:0")
    assert is_claude(MODEL) and is_claude("global.anthropic.claude-opus-4-1-20250805-v1:0")
    assert is_claude("apac.anthropic.claude-3-haiku-20240307-v1:0")
    assert not is_claude("meta.llama3-1-70b-instruct-v1:0")
    assert not is_claude("amazon.nova-pro-v1:0") and not is_claude("cohere.command-r-v1:0")
    assert is_claude("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0")
    assert is_claude("arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-"
                     "sonnet-4-5-20250929-v1:0")
    assert not is_claude("arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-1-70b-instruct-v1:0")
    assert not is_claude(PROFILE)


PROFILE = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"


@pytest.mark.parametrize("marked", [True, False])
def test_an_application_profile_goes_native_when_claude_models_names_it(marked: bool) -> None:
    async def main() -> None:
        async with FakeBedrock(answer=TOOLS) as fake:
            fake.claude_profiles.add(PROFILE)
            mark = f'claude_models = ["{PROFILE}"]\n' if marked else ""
            toml = (f'[[provider]]\nname = "br"\ntype = "bedrock"\nregion = "us-east-1"\n'
                    f'models = ["{PROFILE}"]\n{mark}base_url = "{fake.origin}"\n{KEYS}'
                    f'max_retries = 0\n[models]\n"{ALIAS}" = "{PROFILE}"\n')
            async with gateway(toml) as gw:
                status, _, answer = await post(gw.port, "/v1/messages", raw_request(ALIAS))
                assert status == 200, answer
                assert fake.models[-1] == PROFILE
                assert fake.requests[-1].path.endswith("/invoke" if marked else "/converse")
                assert json.loads(answer)["model"] == ALIAS

    run("asyncio", main())


def test_claude_models_outside_models_is_a_config_error(tmp_path: Path) -> None:
    from modelmux.config.load import ConfigError, load_file
    from modelmux.providers.bedrock import BedrockProvider
    from modelmux.upstream.pool import ConnectionPool

    path = tmp_path / "modelmux.toml"
    path.write_text(f'[[provider]]\nname = "br"\ntype = "bedrock"\nregion = "us-east-1"\n'
                    f'models = ["anthropic.claude-3-haiku-20240307-v1:0"]\n'
                    f'claude_models = ["{PROFILE}"]\n{KEYS}')
    with pytest.raises(ConfigError, match="claude_models"):
        BedrockProvider(load_file(path).provider[0], ConnectionPool())  # type: ignore[arg-type]
