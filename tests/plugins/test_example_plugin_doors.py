"""The example ``redact`` middleware on every door, through a real ``modelmux serve`` and the
official SDKs, in front of fake upstreams speaking the providers' wire formats: a Messages
request to a native Claude provider reaches it redacted (and untouched bytes when nothing was
redacted), embeddings inputs are redacted, a failing middleware is a 500 in the door's own
error shape, and a failing ``on_answer`` after a stream leaves the client its whole stream."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import anthropic
import openai
import pytest

from tests.e2e.proc import ServeProcess
from tests.e2e.threaded import threaded
from tests.fakes.answers import TEXT
from tests.fakes.claude import FakeClaude
from tests.fakes.http import Reply, Request
from tests.fakes.openai import FakeOpenAI
from tests.plugins.helpers import serve

ASKED = "mail bob@example.com or call 5551234, thanks"
REDACTED = "mail [hidden] or call [hidden], thanks"
PLUGIN_500 = {"type": "error", "error": {"type": "api_error",
                                         "message": "The 'redact' plugin failed: RuntimeError."}}


class RecordingClaude(FakeClaude):
    """``FakeClaude`` that also keeps each request body's bytes."""

    def __init__(self) -> None:
        super().__init__(api_key="sk-ant-up")
        self.raw: list[bytes] = []

    async def handle(self, request: Request) -> Reply:
        self.raw.append(request.body)
        return await super().handle(request)


class Stack(NamedTuple):
    proc: ServeProcess
    claude: RecordingClaude
    oai: FakeOpenAI


def config(claude: str, oai: str) -> str:
    return f"""
[[provider]]
name = "claude"
type = "anthropic"
base_url = "{claude}"
api_key = "sk-ant-up"
models = ["claude-x"]
max_retries = 0

[[provider]]
name = "oai"
type = "openai_compatible"
base_url = "{oai}/v1"
models = ["gpt-x", "embed-x"]

[[middleware]]
name = "redact"
[middleware.options]
replacement = "[hidden]"
fail_on = "boom"
fail_answer_on = "sulk"
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, example_site: Path) -> Iterator[Stack]:
    with threaded(RecordingClaude()) as claude, threaded(FakeOpenAI()) as oai:
        proc = serve(tmp_path_factory.mktemp("home"), example_site,
                     config(claude.origin, oai.origin))
        try:
            yield Stack(proc, claude, oai)
        finally:
            assert proc.stop() == 0


@pytest.fixture
def claude_sdk(stack: Stack) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=stack.proc.url, api_key="unused", max_retries=0,
                             timeout=10) as client:
        yield client


@pytest.fixture
def openai_sdk(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=stack.proc.url + "/v1", api_key="unused", max_retries=0,
                       timeout=10) as client:
        yield client


def ask_claude(sdk: anthropic.Anthropic, model: str, text: str, stream: bool,
               **extra: Any) -> str:
    messages: Any = [{"role": "user", "content": text}]
    if not stream:
        answer = sdk.messages.create(model=model, max_tokens=50, messages=messages, **extra)
        return "".join(block.text for block in answer.content if block.type == "text")
    with sdk.messages.stream(model=model, max_tokens=50, messages=messages, **extra) as events:
        return events.get_final_text()


def logged(proc: ServeProcess, needle: str, more_than: int = 0, timeout: float = 10.0) -> bool:
    """True once more than ``more_than`` log lines hold ``needle`` (bounded wait)."""
    deadline = time.monotonic() + timeout
    while count(proc, needle) <= more_than:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def count(proc: ServeProcess, needle: str) -> int:
    return sum(needle in line for line in proc.lines)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_native_claude_provider_receives_the_redacted_messages_request(
        stack: Stack, claude_sdk: anthropic.Anthropic, stream: bool) -> None:
    seen = len(stack.claude.raw)
    assert ask_claude(claude_sdk, "claude-x", ASKED, stream,
                      extra_body={"top_k": 5}) == TEXT.text
    sent = json.loads(stack.claude.raw[-1])
    assert len(stack.claude.raw) == seen + 1
    assert sent["messages"] == [{"role": "user", "content": REDACTED}]
    assert sent["top_k"] == 5 and sent["max_tokens"] == 50 and sent["model"] == "claude-x"
    assert sent.get("stream", False) is stream
    assert not any(b"bob@example.com" in raw for raw in stack.claude.raw)
    assert logged(stack.proc, "2 redaction(s)"), "\n".join(stack.proc.lines)


def test_an_untouched_messages_request_reaches_claude_byte_for_byte(stack: Stack) -> None:
    body = (b'{ "model":"claude-x",  "max_tokens" : 20,\n "messages": [{"role": "user",'
            b' "content": "nothing to hide \\u00e9"}], "metadata": {"user_id": "u-1"} }')
    connection = http.client.HTTPConnection(stack.proc.host, stack.proc.port, timeout=10)
    try:
        connection.request("POST", "/v1/messages", body,
                           {"content-type": "application/json", "anthropic-version": "2023-06-01"})
        answer = connection.getresponse()
        assert answer.status == 200, answer.read()
        assert json.loads(answer.read())["content"][0]["text"] == TEXT.text
    finally:
        connection.close()
    assert stack.claude.raw[-1] == body


def test_a_messages_request_to_an_openai_compatible_provider_is_redacted(
        stack: Stack, claude_sdk: anthropic.Anthropic) -> None:
    assert ask_claude(claude_sdk, "gpt-x", ASKED, False) == TEXT.text
    sent = json.loads(stack.oai.raw_bodies[-1])
    assert sent["messages"] == [{"role": "user", "content": REDACTED}]


@pytest.mark.parametrize(("given", "embedded"), [
    (ASKED, [REDACTED]),
    ([ASKED, "no secret here", "pin 1234"], [REDACTED, "no secret here", "pin [hidden]"]),
    ([5551234, 42], [[5551234, 42]]),
], ids=["string", "strings", "tokens"])
def test_embeddings_inputs_are_redacted(stack: Stack, openai_sdk: openai.OpenAI, given: Any,
                                        embedded: list[Any]) -> None:
    answer = openai_sdk.embeddings.create(model="embed-x", input=given)
    assert len(answer.data) == len(embedded)
    assert stack.oai.embedded[-1] == embedded


@pytest.mark.parametrize("model", ["claude-x", "gpt-x"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_failing_middleware_is_a_500_in_anthropic_shape_on_the_messages_door(
        stack: Stack, claude_sdk: anthropic.Anthropic, model: str, stream: bool) -> None:
    sent = len(stack.claude.raw), len(stack.oai.raw_bodies)
    with pytest.raises(anthropic.InternalServerError) as caught:
        claude_sdk.messages.create(  # type: ignore[call-overload]
            model=model, max_tokens=20, stream=stream,
            messages=[{"role": "user", "content": "boom now"}])
    assert caught.value.status_code == 500
    assert caught.value.body == PLUGIN_500
    assert caught.value.response.headers["content-type"].startswith("application/json")
    assert (len(stack.claude.raw), len(stack.oai.raw_bodies)) == sent  # no upstream call
    assert logged(stack.proc, "plugin redact failed on request"), "\n".join(stack.proc.lines)
    assert ask_claude(claude_sdk, model, "call 1234", stream) == TEXT.text


@pytest.mark.parametrize("door", ["messages", "chat"])
def test_an_on_answer_failure_after_a_stream_leaves_the_client_its_whole_stream(
        stack: Stack, claude_sdk: anthropic.Anthropic, openai_sdk: openai.OpenAI,
        door: str) -> None:
    needle = "stage redact failed observing the answer to request"
    before = count(stack.proc, needle)
    if door == "messages":
        assert ask_claude(claude_sdk, "claude-x", "do not sulk", True) == TEXT.text
    else:
        chunks = list(openai_sdk.chat.completions.create(
            model="gpt-x", stream=True, messages=[{"role": "user", "content": "do not sulk"}]))
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT.text
    assert logged(stack.proc, needle, before), "\n".join(stack.proc.lines)
    assert ask_claude(claude_sdk, "claude-x", "and now?", True) == TEXT.text
