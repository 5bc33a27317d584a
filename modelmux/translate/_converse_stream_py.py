"""Translate a Bedrock ConverseStream into OpenAI chunks, one event stream message at a time.

Reference: Amazon Bedrock API Reference, "ConverseStream" (``:event-type`` messageStart,
contentBlockStart (``start.toolUse`` id and name), contentBlockDelta (``delta.text`` or
``delta.toolUse.input`` JSON pieces), contentBlockStop, messageStop (``stopReason``), metadata
(``usage``); ``:message-type`` ``exception`` with ``:exception-type``) and OpenAI "The chat
completion chunk object". Sans I/O and it never raises: a broken stream becomes one OpenAI
error payload, then silence. The pure twin: import from ``modelmux.translate.converse_stream``,
which picks the native one (``_speedups/converse_stream.pyx``) when built.
"""

from __future__ import annotations

from modelmux.codec.eventstream import Message
from modelmux.errors import ModelMuxError, UpstreamError
from modelmux.schemas import bedrock
from modelmux.schemas.openai_chat import Usage
from modelmux.translate.chunks import ChunkWriter
from modelmux.translate.converse_to_chat import converse_error, converse_usage, stop_reason


class ConverseStreamTranslator:
    """Event stream messages in, ``chat.completion.chunk`` payloads out.

    The finish chunk goes out at ``messageStop``; the stream is done at ``metadata`` (after
    the usage chunk when ``include_usage``), or at the end of the body once ``messageStop``
    was seen. Tool calls are numbered 0..n-1 in the order their blocks start.
    """

    def __init__(self, *, model: str, completion_id: str, created: int,
                 include_usage: bool, json_tool: str | None = None) -> None:
        """``json_tool`` names the tool whose input is a JSON-mode answer: its input pieces
        become content and its ``tool_use`` stop a ``stop``; text before it is dropped."""
        self.writer = ChunkWriter(model=model, completion_id=completion_id, created=created)
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self.error: ModelMuxError | None = None
        self.done = False
        self._started = False
        self._stopped = False
        self._tools: dict[int, int] = {}  # contentBlockIndex -> OpenAI tool call index
        self.json_tool = json_tool
        self._json_block: int | None = None  # contentBlockIndex of the JSON-mode tool call

    @property
    def failed(self) -> bool:
        return self.error is not None

    def feed(self, message: Message) -> list[bytes]:
        """Translate one event stream message."""
        if self.done or self.error is not None:
            return []
        if message.kind != "event":
            return self._exception(message, message.kind)
        event = message.event
        out: list[bytes] = []
        if not self._started:
            self._started = True
            out.append(self.writer.role())
        try:
            if event == "contentBlockDelta":
                self._delta(message.payload, out)
            elif event == "contentBlockStart":
                self._start(message.payload, out)
            elif event == "messageStop":
                reason = bedrock.message_stop_decoder.decode(message.payload).stop_reason
                self._stopped = True
                called = bool(self._tools) and reason in (None, "end_turn")
                finish = "tool_calls" if called else stop_reason(reason)
                if self._json_block is not None and not self._tools and finish == "tool_calls":
                    finish = "stop"
                out.append(self.writer.finish(finish))
            elif event == "metadata":
                usage = bedrock.metadata_decoder.decode(message.payload).usage
                if usage is not None:
                    self.usage = converse_usage(usage)
                if self._stopped:
                    self.done = True
                    if self.include_usage and self.usage is not None:
                        out.append(self.writer.usage(self.usage))
        except (ValueError, RecursionError) as exc:
            return self._fail(UpstreamError(f"Bedrock sent an unreadable {event} event: {exc}",
                                            code="upstream_protocol_error"))
        return out

    def _start(self, payload: bytes, out: list[bytes]) -> None:
        event = bedrock.block_start_decoder.decode(payload)
        use = event.start.tool_use if event.start is not None else None
        if use is not None and self.json_tool is not None and use.name == self.json_tool:
            self._json_block = event.content_block_index
        elif use is not None and event.content_block_index not in self._tools:
            index = self._tools[event.content_block_index] = len(self._tools)
            out.append(self.writer.tool_start(index, use.tool_use_id, use.name))

    def _delta(self, payload: bytes, out: list[bytes]) -> None:
        event = bedrock.block_delta_decoder.decode(payload)
        delta = event.delta
        if delta is None:
            return
        if delta.text:
            if self.json_tool is None:  # in JSON mode only the tool's input is the answer
                out.append(self.writer.text(delta.text))
        elif delta.tool_use is not None and delta.tool_use.input:
            if event.content_block_index == self._json_block:
                out.append(self.writer.text(delta.tool_use.input))
                return
            index = self._tools.get(event.content_block_index)
            if index is None:
                raise ValueError(f"tool input for block {event.content_block_index}, which "
                                 "started no tool use")
            out.append(self.writer.arguments(index, delta.tool_use.input))

    def _exception(self, message: Message, kind: str) -> list[bytes]:
        """``:message-type exception`` (``:exception-type`` names it, the payload holds the
        message) or ``error`` (``:error-code``, ``:error-message`` headers)."""
        if kind == "exception":
            try:
                text = bedrock.error_decoder.decode(message.payload).text
            except (ValueError, RecursionError):
                text = message.payload[:300].decode("utf-8", "replace")
            return self._fail(converse_error(message.text(":exception-type"), text))
        return self._fail(converse_error(message.text(":error-code") or "InternalServerException",
                                         message.text(":error-message")))

    def close(self) -> list[bytes]:
        """End of the body: done if ``messageStop`` came, else an error (cut short)."""
        if self.done or self.error is not None:
            return []
        if not self._stopped:
            return self._fail(UpstreamError("Bedrock closed the stream before messageStop",
                                            code="upstream_stream_truncated"))
        self.done = True
        if self.include_usage and self.usage is not None:
            return [self.writer.usage(self.usage)]
        return []

    def _fail(self, error: ModelMuxError) -> list[bytes]:
        self.error = error
        return [error.body()]
