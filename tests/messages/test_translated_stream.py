"""A translated stream through the running gateway: ``ping`` events while the provider is
quiet, and ``x-modelmux-dropped-fields`` naming what a translated call left out (thinking,
cache_control), streamed or not; a native call drops nothing and says nothing."""

from __future__ import annotations

import asyncio
import json

import pytest

from modelmux.api import messages
from modelmux.translate.messages_events import PING
from tests.fakes.answers import TEXT
from tests.messages.helpers import client, post
from tests.messages.test_translated_sdk import compatible
from tests.providers.test_claude import claude_gateway
from tests.server.helpers import connect
from tests.upstream import run

CLAUDE_CODE_LIKE = {
    "model": "claude-sonnet-4-5", "max_tokens": 64,
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": [
        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],
}


def test_a_quiet_provider_mid_stream_gets_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages, "PING_SECONDS", 0.01)

    async def main() -> None:
        async with compatible() as (gw, fake):
            fake.faults.append("hold")  # four chunks, then silence until the client leaves
            body = json.dumps({**CLAUDE_CODE_LIKE, "stream": True}).encode()
            reader, writer = await connect(gw.port)
            try:
                writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: t\r\n"
                             b"Content-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body) + body)
                seen = b""
                async with asyncio.timeout(10):
                    while seen.count(PING) < 2:
                        piece = await reader.read(65536)
                        assert piece, seen
                        seen += piece
            finally:
                writer.close()
            head, _, stream = seen.partition(b"\r\n\r\n")
            assert b"x-modelmux-dropped-fields: thinking, cache_control" in head
            assert stream.index(b"message_start") < stream.index(PING)
            assert b"content_block_delta" in stream and b"message_stop" not in stream
            await fake.wait_for(lambda: fake.peer_left == 1)  # the upstream read was let go

    run("asyncio", main())


def test_dropped_fields_are_named_streamed_or_not() -> None:
    async def main() -> None:
        async with compatible(TEXT) as (gw, fake), client(gw) as sdk:
            for stream in (False, True):
                status, headers, _ = await post(gw.port, "/v1/messages", json.dumps(
                    {**CLAUDE_CODE_LIKE, "stream": stream}).encode())
                assert status == 200
                assert headers["x-modelmux-dropped-fields"] == "thinking, cache_control"
                sent = fake.raw_bodies[-1]
                assert b"cache_control" not in sent and b"thinking" not in sent
            plain = await sdk.messages.with_raw_response.create(
                model="claude-sonnet-4-5", max_tokens=8,
                messages=[{"role": "user", "content": "hi"}])
            assert "x-modelmux-dropped-fields" not in plain.headers

    run("asyncio", main())


def test_a_native_call_keeps_them_and_names_nothing() -> None:
    async def main() -> None:
        extra = '[models]\n"claude-sonnet-4-5" = "sonnet"\n'
        async with claude_gateway("anthropic", extra=extra) as s:
            for stream in (False, True):
                status, headers, _ = await post(s.gw.port, "/v1/messages", json.dumps(
                    {**CLAUDE_CODE_LIKE, "stream": stream}).encode())
                assert status == 200 and "x-modelmux-dropped-fields" not in headers
                sent = s.claude.bodies[-1]
                assert sent["thinking"] == CLAUDE_CODE_LIKE["thinking"]
                assert sent["system"] == CLAUDE_CODE_LIKE["system"]

    run("asyncio", main())
