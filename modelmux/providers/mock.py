"""The built-in ``mock`` provider: deterministic OpenAI answers with no upstream.

It serves the zero-config default, demos, tests and ``modelmux bench``. The answer is ``text``
repeated ``repeat`` times, or a call of one of the request's tools (``mock_tools`` decides which,
with arguments from its schema), for each of ``n`` choices, streamed in ``chunks`` pieces with
an optional delay between them; pieces are sliced lazily so a huge answer never sits in memory.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import struct
from collections.abc import AsyncGenerator
from typing import Protocol

import msgspec

from modelmux.codec.sse import DONE, encode_data
from modelmux.config.providers import MockProviderConfig
from modelmux.providers.base import ChatCall, EmbedCall, Provider
from modelmux.providers.mock_tools import choice_count, example_arguments, tool_to_call
from modelmux.schemas.openai_embeddings import EmbeddingRequest, Tokens
from modelmux.schemas.openai_chat import (
    AssistantMessage,
    ChatCompletion,
    Choice,
    DeveloperMessage,
    FunctionCall,
    FunctionDef,
    ResponseMessage,
    SystemMessage,
    TextPart,
    ToolCall,
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


MOCK_DIMENSIONS = 16


def mock_vector(item: str | Tokens, dimensions: int = MOCK_DIMENSIONS) -> list[float]:
    """A unit vector that depends only on ``item``: equal inputs embed equally, in any run."""
    text = item if isinstance(item, str) else ",".join(map(str, item))
    seed = hashlib.sha256(text.encode()).digest()
    raw: list[float] = []
    block = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(seed + block.to_bytes(4, "big")).digest()
        raw += [byte / 127.5 - 1.0 for byte in digest]
        block += 1
    vector = raw[:dimensions]
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in vector]  # float32


def mock_embeddings(request: EmbeddingRequest, model: str) -> bytes:
    """OpenAI's embeddings answer for ``request``: ``mock_vector`` of each input, as floats or
    base64 of little-endian float32, with usage counted as for chat (4 characters a token)."""
    dimensions = request.dimensions or MOCK_DIMENSIONS
    data = []
    tokens = 0
    for index, item in enumerate(request.items()):
        vector = mock_vector(item, dimensions)
        tokens += len(item) if not isinstance(item, str) else _estimate_tokens(len(item))
        encoded: object = vector
        if request.encoding_format == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    return _encode({"object": "list", "data": data, "model": model,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


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

    def _usage(self, call: ChatCall, completion_chars: int, n: int) -> Usage:
        prompt = _estimate_tokens(_prompt_chars(call))
        completion = _estimate_tokens(completion_chars) * n
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    async def complete(self, call: ChatCall) -> bytes:
        n = choice_count(call.request)
        function = tool_to_call(call.request)
        if function is None:
            text = self.text * self.repeat
            messages = [ResponseMessage(content=text) for _ in range(n)]
            finish, chars = "stop", self.length
        else:
            arguments = _arguments(function)
            messages = [ResponseMessage(tool_calls=[ToolCall(
                id=_call_id(call, index), function=FunctionCall(function.name, arguments))])
                for index in range(n)]
            finish, chars = "tool_calls", len(function.name) + len(arguments)
        response = ChatCompletion(
            id=call.completion_id,
            created=call.created,
            model=call.public_model,
            choices=[Choice(index=index, message=message, finish_reason=finish)
                     for index, message in enumerate(messages)],
            usage=self._usage(call, chars, n) if self.usage else None,
        )
        return _encode(response)

    async def embed(self, call: EmbedCall) -> bytes:
        """Deterministic vectors (``mock_embeddings``), so demos and tests need no upstream."""
        return mock_embeddings(call.request, call.public_model)

    def stream(self, call: ChatCall) -> AsyncGenerator[bytes, None]:
        """See ``Provider.stream``; a request the mock refuses raises here, before any chunk."""
        n = choice_count(call.request)
        function = tool_to_call(call.request)
        if function is None:
            return self._chunks(call, n, _TextDeltas(self), self.length)
        arguments = _arguments(function)
        deltas = _ToolDeltas(call, function.name, arguments, self.chunks)
        return self._chunks(call, n, deltas, len(function.name) + len(arguments))

    async def _chunks(self, call: ChatCall, n: int, deltas: _Deltas,
                      chars: int) -> AsyncGenerator[bytes, None]:
        """The chunk stream: each choice's opening delta, then ``deltas`` piece by piece for
        every choice in turn (``chunk_delay_ms`` apart), each choice's finish, usage, ``[DONE]``."""
        head = (
            b'{"id":' + _encode(call.completion_id)
            + b',"object":"chat.completion.chunk","created":' + str(call.created).encode()
            + b',"model":' + _encode(call.public_model) + b',"choices":['
        )
        include_usage = call.include_usage and self.usage
        tail = b',"usage":null}' if include_usage else b"}"
        opens = [head + b'{"index":' + str(index).encode() + b',"delta":' for index in range(n)]
        going = b',"logprobs":null,"finish_reason":null}]' + tail
        for index, start in enumerate(opens):
            yield encode_data(start + deltas.opening(index) + going)
        for step in range(self.chunks):
            if self.delay:
                await asyncio.sleep(self.delay)
            delta = deltas.piece(step)
            if delta is not None:
                for start in opens:
                    yield encode_data(start + delta + going)
        finish = b',"logprobs":null,"finish_reason":' + deltas.finish + b"}]" + tail
        for start in opens:
            yield encode_data(start + b"{}" + finish)
        if include_usage:
            yield encode_data(head + b'],"usage":' + _encode(self._usage(call, chars, n)) + b"}")
        yield DONE


def _arguments(function: FunctionDef) -> str:
    """The call's ``arguments``: a JSON string, an example of the function's parameters."""
    return _encode(example_arguments(function.parameters)).decode()


def _call_id(call: ChatCall, index: int) -> str:
    """``call_`` and 24 hex digits: the completion's own id, and the choice."""
    return f"call_{call.completion_id.rpartition('-')[2][:20]}{index:04x}"


class _Deltas(Protocol):
    """The ``delta`` objects of one kind of streamed answer, as JSON bytes."""

    finish: bytes

    def opening(self, index: int) -> bytes: ...

    def piece(self, step: int) -> bytes | None: ...


class _TextDeltas:
    """The configured text, one slice per step."""

    finish = b'"stop"'

    def __init__(self, provider: MockProvider) -> None:
        self.provider = provider

    def opening(self, index: int) -> bytes:
        return b'{"role":"assistant","content":""}'

    def piece(self, step: int) -> bytes:
        return b'{"content":' + _encode(self.provider.piece(step)) + b"}"


class _ToolDeltas:
    """One tool call: its id and name first, then the arguments in up to ``steps`` fragments.

    Reference: OpenAI "The chat completion chunk object", ``choices[].delta.tool_calls``.
    """

    finish = b'"tool_calls"'

    def __init__(self, call: ChatCall, name: str, arguments: str, steps: int) -> None:
        self.call = call
        self.name = _encode(name)
        self.arguments = arguments
        self.steps = steps

    def opening(self, index: int) -> bytes:
        return (b'{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":'
                + _encode(_call_id(self.call, index)) + b',"type":"function","function":{"name":'
                + self.name + b',"arguments":""}}]}')

    def piece(self, step: int) -> bytes | None:
        size = len(self.arguments)
        fragment = self.arguments[step * size // self.steps:(step + 1) * size // self.steps]
        if not fragment:
            return None
        return (b'{"tool_calls":[{"index":0,"function":{"arguments":' + _encode(fragment)
                + b"}}]}")
