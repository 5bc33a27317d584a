"""``rebuilt_messages_body``: a middleware's change to the internal call carried back into the
client's Messages body, everything the change did not touch kept as the client wrote it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from modelmux.api.messages import decode_messages
from modelmux.api.messages_rebuild import rebuilt_messages_body
from modelmux.errors import InvalidRequest
from modelmux.schemas.openai_chat import ChatCompletionRequest, request_decoder
from modelmux.translate.messages_request import encode, messages_to_chat_request

BODY = (b'{"model": "claude-x", "max_tokens": 50, "top_k": 5,'
        b' "thinking": {"type": "enabled",  "budget_tokens": 1024},'
        b' "system": [{"type": "text", "text": "Be brief.",'
        b' "cache_control": {"type": "ephemeral"}}],'
        b' "messages": [{"role": "user", "content": "mail bob@example.com"},'
        b' {"role": "assistant",  "content": [{"type": "text", "text": "Noted."}]},'
        b' {"role": "user", "content": [{"type": "text", "text": "call 5551234",'
        b' "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "thanks"}]}],'
        b' "temperature": 0.5, "stream": true}')


def internal(body: bytes) -> ChatCompletionRequest:
    """The internal call the door makes of ``body``."""
    request, fields = decode_messages(body)
    chat, _ = messages_to_chat_request(request, fields, stream=bool(request.stream))
    return request_decoder.decode(encode(chat))


def changed(request: ChatCompletionRequest, change: Callable[[Any], None]) -> ChatCompletionRequest:
    """``request`` as a middleware leaves it after ``change`` to its JSON."""
    value = msgspec.json.decode(msgspec.json.encode(request))
    change(value)
    return request_decoder.decode(msgspec.json.encode(value))


def rebuilt(body: bytes, change: Callable[[Any], None]) -> dict[str, Any]:
    before = internal(body)
    return json.loads(rebuilt_messages_body(body, before, changed(before, change)))


def members(body: bytes) -> dict[str, bytes]:
    return {k: bytes(v) for k, v in msgspec.json.decode(body, type=dict[str, msgspec.Raw]).items()}


def test_a_redacted_turn_is_replaced_and_every_other_member_keeps_its_bytes() -> None:
    before = internal(BODY)

    def redact(value: Any) -> None:
        value["messages"][1]["content"] = "mail [x]"
        value["messages"][3]["content"][0]["text"] = "call [x]"

    out = rebuilt_messages_body(BODY, before, changed(before, redact))
    old, new = members(BODY), members(out)
    assert new.keys() == old.keys()
    assert {k: v for k, v in new.items() if k != "messages"} == \
        {k: v for k, v in old.items() if k != "messages"}
    turns = msgspec.json.decode(new["messages"], type=list[msgspec.Raw])
    assert bytes(turns[1]) == \
        b'{"role": "assistant",  "content": [{"type": "text", "text": "Noted."}]}'
    assert json.loads(bytes(turns[0])) == {"role": "user", "content": "mail [x]"}
    assert json.loads(bytes(turns[2]))["content"] == [
        {"type": "text", "text": "call [x]", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "thanks"}]


def test_changed_and_removed_sampling_members() -> None:
    def change(value: Any) -> None:
        del value["temperature"]
        value["max_tokens"] = 20
        value["stop"] = ["END"]

    out = rebuilt(BODY, change)
    assert "temperature" not in out
    assert out["max_tokens"] == 20 and out["stop_sequences"] == ["END"]
    assert out["top_k"] == 5 and out["stream"] is True and out["model"] == "claude-x"


def test_a_changed_system_prompt_replaces_the_clients() -> None:
    def change(value: Any) -> None:
        value["messages"][0]["content"] = "Be very brief."

    assert rebuilt(BODY, change)["system"] == "Be very brief."


def test_turns_that_do_not_line_up_are_replaced_as_a_whole() -> None:
    body = (b'{"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "a 123"},'
            b' {"role": "user", "content": "b"}]}')

    def change(value: Any) -> None:
        value["messages"][0]["content"] = "a [x]"

    assert rebuilt(body, change)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a [x]"},
                                     {"type": "text", "text": "b"}]}]


def test_a_change_claude_cannot_take_is_a_400_naming_it() -> None:
    def change(value: Any) -> None:
        value["n"] = 2

    with pytest.raises(InvalidRequest) as caught:
        rebuilt(BODY, change)
    assert caught.value.param == "n"


def test_a_request_replaced_by_an_equal_one_keeps_the_clients_bytes() -> None:
    before = internal(BODY)
    assert rebuilt_messages_body(BODY, before, changed(before, lambda value: None)) is BODY
