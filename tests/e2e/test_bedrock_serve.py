"""``modelmux serve`` as a real process in front of a fake Bedrock runtime, with no keys in the
config: the process finds them in a shared credentials profile, signs with them, and the
official SDK gets text, tool calls and usage, streamed and not, and Bedrock's errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest

from tests.e2e.proc import LOOPBACK_SERVER, ServeProcess
from tests.fakes.answers import TEXT, TOOLS
from tests.fakes.bedrock import FakeBedrock
from tests.providers.harness import MESSAGES, TOOLS_PARAM, collect, expected, from_completion, same
from tests.upstream import run

MODEL = "meta.llama3-1-70b-instruct-v1:0"
CONFIG = """
[[provider]]
name = "br"
type = "bedrock"
region = "eu-west-3"
base_url = "{origin}"
models = ["{model}"]
max_retries = 0
"""


def test_sdk_through_modelmux_serve_with_a_credentials_profile(tmp_path: Path) -> None:
    aws = tmp_path / ".aws"
    aws.mkdir()
    (aws / "credentials").write_text("[gw]\naws_access_key_id = AKIDPROFILE0000000001\n"
                                     "aws_secret_access_key = profile/secret\n"
                                     "aws_session_token = profile-token\n")
    config = tmp_path / "config.toml"

    async def main() -> None:
        async with FakeBedrock(access_key="AKIDPROFILE0000000001", secret="profile/secret",
                               token="profile-token", region="eu-west-3", answer=TOOLS) as fake:
            config.write_text(LOOPBACK_SERVER + CONFIG.format(origin=fake.origin, model=MODEL))
            env = {"AWS_PROFILE": "gw", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
                   "AWS_EC2_METADATA_DISABLED": "true"}
            serve = await asyncio.to_thread(ServeProcess, ["serve", "--config", str(config)],
                                            env, tmp_path)
            try:
                client = openai.AsyncOpenAI(base_url=serve.url + "/v1", api_key="x",
                                            max_retries=0, timeout=10)
                async with client:
                    done = await client.chat.completions.create(
                        model=MODEL, messages=MESSAGES, tools=TOOLS_PARAM)
                    same(from_completion(done), expected(TOOLS, MODEL))
                    fake.answer = TEXT
                    stream = await client.chat.completions.create(
                        model=MODEL, messages=MESSAGES, stream=True,
                        stream_options={"include_usage": True})
                    same(await collect(stream), expected(TEXT, MODEL))
                    fake.faults.append("429")
                    with pytest.raises(openai.RateLimitError):
                        await client.chat.completions.create(model=MODEL, messages=MESSAGES)
                assert len(fake.requests) == 3
                assert all("x-amz-security-token" in r.headers for r in fake.requests)
            finally:
                assert await asyncio.to_thread(serve.stop) == 0
            assert not any("profile/secret" in line or "profile-token" in line
                           for line in serve.lines)

    run("asyncio", main(), timeout=60)
