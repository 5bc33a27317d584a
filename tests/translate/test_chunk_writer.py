"""``ChunkWriter``'s spliced text, argument and tool-start deltas are byte for byte the chunk a
whole encode gives, for any string (the slot marker itself included) and any tool index."""

from __future__ import annotations

import pytest

from modelmux.schemas.openai_chat import Delta, FunctionCallDelta, ToolCallDelta
from modelmux.translate.chunks import ChunkWriter

STRINGS = ["hi", "", "\x00slot\x00", 'é"\n\\', "slot", "🙂" * 3, '"\x00slot\x00"']


@pytest.mark.parametrize("text", STRINGS)
def test_spliced_deltas_equal_whole_encodes(text: str) -> None:
    writer = ChunkWriter(model='m"1', completion_id="chatcmpl-é", created=7)
    for _ in range(3):  # whole encodes first, then the splice is built and reused
        assert writer.text(text) == writer.chunk(Delta(content=text))
        for index in (0, 1, 12):
            whole = writer.chunk(Delta(tool_calls=[ToolCallDelta(
                index=index, function=FunctionCallDelta(arguments=text))]))
            assert writer.arguments(index, text) == whole


@pytest.mark.parametrize("text", STRINGS)
def test_spliced_tool_starts_equal_whole_encodes(text: str) -> None:
    writer = ChunkWriter(model=text, completion_id="chatcmpl-\x00slot\x00", created=7)
    for index in (0, 1, 12, 0):
        whole = writer.chunk(Delta(tool_calls=[ToolCallDelta(
            index=index, id=text, type="function",
            function=FunctionCallDelta(name=text, arguments=text))]))
        assert writer.tool_start(index, text, text, text) == whole
