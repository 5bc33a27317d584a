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

from modelmux.cache.entry import JSON
from modelmux.codec.sse import SSEDecoder, SSEProtocolError

OPENAI, ANTHROPIC = "openai.chat", "anthropic.messages"
FILTERED = frozenset({"content_filter", "refusal"})

_json = msgspec.json.Decoder(dict[str, Any])


def storable(door: str, form: str, body: bytes) -> bool:
    """True when ``body`` (as delivered by ``door``, in ``form``) is a complete success."""
    try:
        if form == JSON:
            doc = _json.decode(body)
            return _openai_done([doc]) if door == OPENAI else _message_done(doc)
        events = SSEDecoder().feed(body)
    except (msgspec.DecodeError, msgspec.ValidationError, SSEProtocolError):
        return False
    if door == OPENAI:
        if not events or events[-1].data != b"[DONE]":
            return False
        try:
            docs = [_json.decode(e.data) for e in events[:-1] if e.data]
        except (msgspec.DecodeError, msgspec.ValidationError):
            return False
        return _openai_done(docs)
    return _events_done(events)


def _openai_done(docs: list[dict[str, Any]]) -> bool:
    """Every finish_reason is a normal one, at least one choice finished, no error."""
    finished = False
    for doc in docs:
        if "error" in doc:
            return False
        for choice in doc.get("choices") or ():
            reason = choice.get("finish_reason") if isinstance(choice, dict) else None
            if reason in FILTERED:
                return False
            finished = finished or reason is not None
    return finished


def _message_done(doc: dict[str, Any]) -> bool:
    reason = doc.get("stop_reason")
    return doc.get("type") == "message" and reason is not None and reason not in FILTERED


def _events_done(events: list[Any]) -> bool:
    stopped = False
    for event in events:
        if event.event == "error":
            return False
        if event.event == "message_stop":
            stopped = True
        elif event.event == "message_delta":
            try:
                delta = _json.decode(event.data).get("delta") or {}
            except (msgspec.DecodeError, msgspec.ValidationError):
                return False
            if delta.get("stop_reason") in FILTERED:
                return False
    return stopped
