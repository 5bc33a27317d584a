"""Token counts without per-chunk JSON: the usage scan, the relays' ``usage``, the stats."""

from __future__ import annotations

import pytest

from modelmux.providers.base import carries_usage, usage_of
from modelmux.providers.claude import MessagesRelay
from modelmux.providers.openai_compatible import ChunkRelay
from modelmux.translate import MessagesStreamTranslator
from tests.fakes.answers import TEXT
from tests.fakes.claude import message_events
from tests.fakes.http import bytewise
from tests.fakes.openai import FakeOpenAI, chunk_events
from tests.observability.helpers import ANSWER, UPSTREAM_KEY, chat_body, gateway, request
from tests.providers.test_relay import drive, splits


@pytest.mark.parametrize(("payload", "found"), [
    (b'{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}', (3, 4)),
    (b'{"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}', (3, 4)),
    (b'{"choices":[],"usage":\n  {"prompt_tokens":3}}', (3, 0)),
    (b'{"choices":[{"delta":{"content":"x"}}],"usage":null}', None),
    (b'{"choices":[{"delta":{"content":"\\"usage\\":{"}}]}', None),
    (b'{"choices":[]}', None),
])
def test_the_scan_finds_only_a_usage_object(payload: bytes, found: tuple[int, int] | None) -> None:
    assert carries_usage(payload) is (found is not None)
    assert usage_of(payload) == found


def test_usage_of_ignores_what_it_cannot_read() -> None:
    assert usage_of(b"not json") is None
    assert usage_of(b'{"usage":{"prompt_tokens":"many"}}') is None
    assert usage_of(b"[]") is None


@pytest.mark.parametrize("include_usage", [True, False])
def test_chunk_relay_usage_survives_any_split(include_usage: bool) -> None:
    body = b"".join(chunk_events(TEXT, "m", include_usage))
    expected = (TEXT.prompt_tokens, TEXT.completion_tokens) if include_usage else None
    for pieces in splits(body)[::7]:
        relay = ChunkRelay("local", "public")
        drive(relay, pieces)
        assert relay.finished and relay.usage == expected


def test_messages_relay_reports_the_translator_usage_without_include_usage() -> None:
    translator = MessagesStreamTranslator(model="m", completion_id="c", created=1,
                                          include_usage=False)
    relay = MessagesRelay(translator, "claude")
    assert relay.usage is None
    drive(relay, [b"".join(message_events(TEXT, "m"))])
    assert relay.usage == (TEXT.prompt_tokens, TEXT.completion_tokens)


def test_stream_tokens_arrive_byte_by_byte_from_the_upstream(run) -> None:
    async def main() -> None:
        upstream = FakeOpenAI(api_key=UPSTREAM_KEY, answer=ANSWER, split=bytewise)
        async with gateway(upstream) as (app, port, _, _):
            status, _, _ = await request(port, "POST", "/v1/chat/completions",
                                         chat_body("gpt-x", stream=True, usage=True))
            assert status == 200
            tokens = app.metrics.tokens
            assert tokens.value(("gpt-x", "oai", "input")) == ANSWER.prompt_tokens
            assert tokens.value(("gpt-x", "oai", "output")) == ANSWER.completion_tokens

    run(main())
