"""The scripted answer every fake upstream renders in its own wire format.

One ``Answer`` (text, parallel tool calls, token counts) becomes an Anthropic Message, an
Anthropic event stream, an OpenAI completion or an OpenAI chunk stream, so one assertion checks
what the SDK got from any provider type.
"""

from __future__ import annotations

from dataclasses import dataclass

PIECE_SIZES = (1, 4, 2, 7, 3, 5)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, exactly as the client should receive it


@dataclass(frozen=True)
class Answer:
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    prompt_tokens: int = 17
    completion_tokens: int = 9
    cached_tokens: int = 0  # of prompt_tokens: OpenAI's prompt_tokens_details.cached_tokens
    cache_write_tokens: int = 0  # of prompt_tokens: Anthropic's cache_creation_input_tokens

    @property
    def stop_reason(self) -> str:
        return "tool_use" if self.tool_calls else "end_turn"

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


def pieces(text: str, sizes: tuple[int, ...] = PIECE_SIZES) -> list[str]:
    """``text`` cut into pieces of cycling sizes: cuts land inside JSON tokens and words."""
    out, at, turn = [], 0, 0
    while at < len(text):
        size = sizes[turn % len(sizes)]
        out.append(text[at:at + size])
        at += size
        turn += 1
    return out


TEXT = Answer(text="Héllo – wörld ✓ 日本語. Streaming works, \"quoted\" and\nnew lines too.")
TOOLS = Answer(
    text="Let me check both.",
    tool_calls=(
        ToolCall("toolu_01A", "get_weather", '{"city": "Paris", "days": 3, "units": "°C"}'),
        ToolCall("toolu_02B", "get_time", '{"tz": "Europe/Paris", "fmt": "24h"}'),
    ),
    prompt_tokens=120,
    completion_tokens=42,
)
