"""The built-in ``mock`` provider: deterministic OpenAI answers with no upstream.

It serves the zero-config default, demos, tests and ``modelmux bench``. The answer is ``text``
repeated ``repeat`` times, streamed in ``chunks`` pieces with an optional delay between them;
pieces are sliced lazily so a huge configured answer never sits in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import msgspec

from modelmux.codec.sse import DONE, encode_data
from modelmux.config.schema import MockProviderConfig
from modelmux.providers.base import ChatCall, Provider
from modelmux.schemas.openai_chat import (
    AssistantMessage,
    ChatCompletion,
    Choice,
    DeveloperMessage,
    ResponseMessage,
    SystemMessage,
    TextPart,
    ToolMessage,
    Usage,
    UserMessage,
)

_encode = msgspec.json.Encoder().encode


def _estimate_tokens(chars: int) -> int:
    return (chars + 3) // 4


def _prompt_chars(call: ChatCall) -> int:
    total = 0
    for message in call.request.messages:
        if isinstance(message, (SystemMessage, DeveloperMessage, UserMessage, AssistantMessage, ToolMessage)):
            content = message.content
            if isinstance(content, str):
                total += len(content)
            elif content:
                total += sum(len(part.text) for part in content if isinstance(part, TextPart))
    return total


class MockProvider(Provider):
    """Answers every model it lists with the configured text."""

    type = "mock"

    def __init__(self, config: MockProviderConfig) -> None:
        super().__init__(config.name, list(config.models))
        self.text = config.text
        self.repeat = max(config.repeat, 0)
        self.chunks = max(config.chunks, 1)
        self.delay = config.chunk_delay_ms / 1000.0
        self.usage = config.usage
        self.length = len(self.text) * self.repeat

    def piece(self, index: int) -> str:
        """The ``index``-th of ``chunks`` near-equal slices of text * repeat."""
        start = index * self.length // self.chunks
        end = (index + 1) * self.length // self.chunks
        if start == end:
            return ""
        size = len(self.text)
        offset = start % size
        need = end - start
        out = self.text[offset:offset + need]
        while len(out) < need:
            out += self.text[: need - len(out)]
        return out

    def _usage(self, call: ChatCall) -> Usage:
        prompt = _estimate_tokens(_prompt_chars(call))
        completion = _estimate_tokens(self.length)
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    async def complete(self, call: ChatCall) -> bytes:
        response = ChatCompletion(
            id=call.completion_id,
            created=call.created,
            model=call.public_model,
            choices=[Choice(index=0, message=ResponseMessage(content=self.text * self.repeat),
                            finish_reason="stop")],
            usage=self._usage(call) if self.usage else None,
        )
        return _encode(response)

    async def stream(self, call: ChatCall) -> AsyncGenerator[bytes, None]:
        head = (
            b'{"id":' + _encode(call.completion_id) + b',"object":"chat.completion.chunk","created":'
            + str(call.created).encode() + b',"model":' + _encode(call.public_model) + b',"choices":['
        )
        include_usage = call.include_usage and self.usage
        tail = b',"usage":null}' if include_usage else b"}"
        yield encode_data(head + b'{"index":0,"delta":{"role":"assistant","content":""},'
                          b'"logprobs":null,"finish_reason":null}]' + tail)
        for index in range(self.chunks):
            if self.delay:
                await asyncio.sleep(self.delay)
            yield encode_data(head + b'{"index":0,"delta":{"content":' + _encode(self.piece(index))
                              + b'},"logprobs":null,"finish_reason":null}]' + tail)
        yield encode_data(head + b'{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]' + tail)
        if include_usage:
            yield encode_data(head + b'],"usage":' + _encode(self._usage(call)) + b"}")
        yield DONE
