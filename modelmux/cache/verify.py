"""Is a captured answer a complete success worth storing? Pure.

Only a whole answer that ended normally is kept: never an error body or error event, a
stream without its end marker (OpenAI's ``[DONE]``, Anthropic's ``message_stop``), or a
filtered answer (OpenAI ``finish_reason: content_filter``, Anthropic ``stop_reason:
refusal``). Wire formats per OpenAI "The chat completion object" / "chunk object" and
Anthropic "Messages" / "Streaming Messages".
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct

from modelmux.cache.entry import JSON
from modelmux.codec.sse import SSEDecoder, SSEProtocolError

OPENAI, ANTHROPIC = "openai.chat", "anthropic.messages"
FILTERED = frozenset({"content_filter", "refusal"})



class _Choice(Struct):
    finish_reason: str | None = None


class _Chat(Struct):
    """The parts of a completion, or of one chunk, that say how it ended."""

    choices: list[_Choice] | None = None
    error: Any = None


class _Delta(Struct):
    stop_reason: str | None = None


class _Message(Struct):
    """A Message, or the data of a ``message_delta`` event."""

    type: str = ""
    stop_reason: str | None = None
    delta: _Delta | None = None


_chat = msgspec.json.Decoder(_Chat)
_message = msgspec.json.Decoder(_Message)


def storable(door: str, form: str, body: bytes) -> bool:
    """True when ``body`` (as delivered by ``door``, in ``form``) is a complete success."""
    try:
        if form == JSON:
            if door == OPENAI:
                return _openai_done([_chat.decode(body)])
            return _message_done(_message.decode(body))
        events = SSEDecoder().feed(body)
    except (msgspec.DecodeError, msgspec.ValidationError, SSEProtocolError):
        return False
    if door == OPENAI:
        if not events or events[-1].data != b"[DONE]":
            return False
        try:
            docs = [_chat.decode(e.data) for e in events[:-1] if e.data]
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False
        return _openai_done(docs)
    return _events_done(events)


def _openai_done(docs: list[_Chat]) -> bool:
    """Every finish_reason is a normal one, at least one choice finished, no error."""
    finished = False
    for doc in docs:
        if doc.error is not None:
            return False
        for choice in doc.choices or ():
            reason = choice.finish_reason
            if reason in FILTERED:
                return False
            finished = finished or reason is not None
    return finished


def _message_done(doc: _Message) -> bool:
    reason = doc.stop_reason
    return doc.type == "message" and reason is not None and reason not in FILTERED


def _events_done(events: list[Any]) -> bool:
    stopped = False
    for event in events:
        if event.event == "error":
            return False
        if event.event == "message_stop":
            stopped = True
        elif event.event == "message_delta":
            try:
                delta = _message.decode(event.data).delta
            except (msgspec.DecodeError, msgspec.ValidationError):
                return False
            if delta is not None and delta.stop_reason in FILTERED:
                return False
    return stopped
