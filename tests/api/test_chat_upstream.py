"""Streaming modes in front of an ``openai_compatible`` upstream (the fake OpenAI server).

The provider must be asked for what the client gets: ``never`` turns a stream into one JSON
request upstream, ``always`` turns a JSON request into a stream, whatever the client's body said.
"""

from __future__ import annotations

import json

import pytest

from modelmux.config.providers import OpenAICompatibleConfig
from modelmux.config.schema import Config, StreamingConfig
from tests.api.helpers import chat, payloads, post, serving, text_of
from tests.fakes.answers import Answer
from tests.fakes.openai import FakeOpenAI

ANSWER = Answer(text="The quick brown fox jumps over the lazy dog. " * 4)


def upstream(origin: str) -> Config:
    provider = OpenAICompatibleConfig(name="up", models=["gpt-x"], base_url=f"{origin}/v1")
    return Config(provider=[provider], streaming=StreamingConfig(mode="auto"))


@pytest.mark.parametrize(("mode", "asked", "streamed"), [
    ("never", True, False),
    ("always", False, True),
    ("buffered", True, True),
    ("standard", True, True),
])
def test_upstream_is_asked_for_what_the_client_gets(run, mode: str, asked: bool,
                                                    streamed: bool) -> None:
    async def main() -> None:
        async with FakeOpenAI(answer=ANSWER) as fake, serving(upstream(fake.origin)) as port:
            payload = chat(stream=asked, model="gpt-x")
            if asked:
                payload["stream_options"] = {"include_usage": True}
            status, headers, body = await post(port, payload, {"x-modelmux-stream-mode": mode})
            assert status == 200
            sent = json.loads(fake.raw_bodies[-1])
            assert bool(sent.get("stream")) is streamed
            assert ("stream_options" in sent) is (asked and streamed)
            if streamed:
                events = payloads(body)
                assert headers["content-type"].startswith("text/event-stream")
                assert events[-1] == b"[DONE]" and text_of(events) == ANSWER.text
            else:
                assert json.loads(body)["choices"][0]["message"]["content"] == ANSWER.text

    run(main())
