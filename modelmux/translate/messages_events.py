"""Translate OpenAI chat completion chunks into Anthropic Messages stream events, sans I/O.

Reference: OpenAI "The chat completion chunk object" (``stream_options.include_usage``, tool
call deltas by ``index``, ``data: [DONE]``) and Anthropic "Streaming Messages" (event flow:
message_start, content blocks opened, deltas, closed, message_delta, message_stop). Fed one
chunk payload (SSE ``data``) at a time, it returns framed SSE events. It never raises: a broken
stream ends in one ``event: error``, and then the translator is silent.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from modelmux.translate.messages_answer import ChatUsage, messages_usage, stop_reason
from modelmux.translate.messages_errors import error_event, type_of_payload

PING = b'event: ping\ndata: {"type": "ping"}\n\n'
_DONE = b"[DONE]"
_encode = msgspec.json.Encoder().encode


class _FunctionDelta(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolDelta(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: _FunctionDelta | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    tool_calls: list[_ToolDelta] | None = None


class _Choice(msgspec.Struct):
    index: int = 0
    delta: _Delta = msgspec.field(default_factory=_Delta)
    finish_reason: str | None = None
    stop_reason: str | int | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = []
    usage: ChatUsage | None = None
    error: Any = None


_chunk = msgspec.json.Decoder(_Chunk)


class _State(enum.Enum):
    START = "start"  # nothing sent yet
    STREAMING = "streaming"  # message_start sent
    DONE = "done"  # message_stop sent
    FAILED = "failed"  # an error event sent


def frame(name: str, doc: Any) -> bytes:
    """One SSE event with a JSON ``data`` line (msgspec never writes a raw newline)."""
    return b"event: " + name.encode() + b"\ndata: " + _encode(doc) + b"\n\n"


class MessagesEventStream:
    """OpenAI chunk payloads in, Anthropic event frames out.

    ``done`` turns True at ``message_stop``, ``failed`` once an error event was produced.
    ``usage`` holds (input, output) tokens once a chunk reported them.
    """

    def __init__(self, *, model: str, message_id: str,
                 stop_sequences: list[str] | None = None) -> None:
        self.model = model
        self.message_id = message_id
        self.stop_sequences = stop_sequences
        self.usage: tuple[int, int] | None = None
        self._state = _State.START
        self._usage: ChatUsage | None = None
        self._next = 0  # the next content block's index
        self._open: int | None = None  # the open block's index
        self._text: int | None = None  # the open block's index when it is a text block
        self._tools: dict[int, int] = {}  # OpenAI tool call index -> block index
        self._finish: tuple[str | None, str | None] = (None, None)

    @property
    def started(self) -> bool:
        return self._state is not _State.START

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    @property
    def failed(self) -> bool:
        return self._state is _State.FAILED

    def feed(self, payload: bytes) -> list[bytes]:
        """The events for one chunk payload (``[DONE]`` ends the message)."""
        state = self._state
        if state is _State.DONE or state is _State.FAILED:
            return []
        if payload.strip() == _DONE:
            return self._end()
        try:
            chunk = _chunk.decode(payload)
        except (ValueError, RecursionError) as exc:  # DecodeError; older msgspec: UnicodeDecodeError
            return self.fail("api_error", f"the upstream sent an unreadable chunk: {exc}")
        if chunk.error is not None:
            error = chunk.error
            message = error.get("message") if isinstance(error, dict) else None
            return self.fail(type_of_payload(error), str(message or "upstream error"))
        out = self._start() if state is _State.START else []
        for choice in chunk.choices:
            if choice.index == 0:
                self._choice(choice, out)
        if chunk.usage is not None:
            self._usage = chunk.usage
            self.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
        return out

    def close(self) -> list[bytes]:
        """End of input: the closing events if the answer finished, else an error event."""
        state = self._state
        if state is _State.DONE or state is _State.FAILED:
            return []
        if self._finish[0] is not None:
            return self._end()
        return self.fail("api_error", "the upstream closed the stream before it finished")

    def fail(self, kind: str, message: str) -> list[bytes]:
        """End the stream with an ``event: error`` of Anthropic ``kind`` (once)."""
        if self._state is _State.DONE or self._state is _State.FAILED:
            return []
        self._state = _State.FAILED
        return [error_event(kind, message)]

    def _start(self) -> list[bytes]:
        self._state = _State.STREAMING
        return [frame("message_start", {"type": "message_start", "message": {
            "id": self.message_id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}}})]

    def _choice(self, choice: _Choice, out: list[bytes]) -> None:
        delta = choice.delta
        if delta.content:
            if self._text is None:
                self._text = self._open_block({"type": "text", "text": ""}, out)
            out.append(frame("content_block_delta", {
                "type": "content_block_delta", "index": self._text,
                "delta": {"type": "text_delta", "text": delta.content}}))
        for call in delta.tool_calls or ():
            block = self._tools.get(call.index)
            function = call.function or _FunctionDelta()
            if block is None:
                block = self._tools[call.index] = self._open_block({
                    "type": "tool_use", "id": call.id or f"toolu_{self.message_id}_{call.index}",
                    "name": function.name or "", "input": {}}, out)
            if function.arguments:
                out.append(frame("content_block_delta", {
                    "type": "content_block_delta", "index": block,
                    "delta": {"type": "input_json_delta", "partial_json": function.arguments}}))
        if choice.finish_reason is not None:
            self._close_block(out)
            self._finish = stop_reason(choice.finish_reason, choice.stop_reason,
                                       self.stop_sequences)

    def _open_block(self, block: dict[str, Any], out: list[bytes]) -> int:
        self._close_block(out)
        index = self._open = self._next
        self._next += 1
        out.append(frame("content_block_start", {
            "type": "content_block_start", "index": index, "content_block": block}))
        return index

    def _close_block(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(frame("content_block_stop", {"type": "content_block_stop",
                                                    "index": self._open}))
            self._open = self._text = None

    def _end(self) -> list[bytes]:
        out = self._start() if self._state is _State.START else []
        self._close_block(out)
        reason, sequence = self._finish
        usage = messages_usage(self._usage)
        out.append(frame("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": reason or "end_turn", "stop_sequence": sequence},
            "usage": usage}))
        out.append(frame("message_stop", {"type": "message_stop"}))
        self._state = _State.DONE
        return out
