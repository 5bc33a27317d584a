"""The buffered-mode ``Coalescer``: sizes, deadlines on an injected clock, flush order, splits."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from modelmux.api.streaming import Coalescer
from modelmux.codec.sse import DONE, SSEDecoder, encode_data

HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def chunk(delta: dict[str, Any] | None = None, *, index: int = 0, finish: str | None = None,
          usage: dict[str, int] | None = None, choices: bool = True, **top: Any) -> bytes:
    body: dict[str, Any] = {**HEAD, **top}
    body["choices"] = [{"index": index, "delta": delta or {}, "logprobs": None,
                        "finish_reason": finish}] if choices else []
    if usage is not None:
        body["usage"] = usage
    return encode_data(json.dumps(body, ensure_ascii=False).encode())


def role(index: int = 0) -> bytes:
    return chunk({"role": "assistant", "content": ""}, index=index)


def text(content: str, index: int = 0, **top: Any) -> bytes:
    return chunk({"content": content}, index=index, **top)


TOOL = chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                              "function": {"name": "f", "arguments": ""}}]})
FINISH = chunk(finish="stop")
USAGE = chunk(choices=False, usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3})
ERROR = encode_data(b'{"error":{"message":"boom","type":"upstream_error","code":"x","param":null}}')


def events(data: bytes) -> list[bytes]:
    return [event.data for event in SSEDecoder().feed(data)]


def contents(data: bytes) -> list[str]:
    """The text of every text-only event in ``data``."""
    out = []
    for payload in events(data):
        if payload == b"[DONE]":
            continue
        body = json.loads(payload)
        for choice in body.get("choices", []):
            if set(choice["delta"]) == {"content"}:
                out.append(choice["delta"]["content"])
    return out


def make(size: int = 4096, timeout: float = 0.2) -> tuple[Coalescer, Clock]:
    clock = Clock()
    return Coalescer(size, timeout, clock), clock


def test_role_chunk_passes_at_once_and_text_waits() -> None:
    coalescer, _ = make()
    assert coalescer.feed(role()) == role()
    assert coalescer.deadline is None
    assert coalescer.feed(text("Hel")) == b""
    assert coalescer.feed(text("lo")) == b""
    assert coalescer.deadline == 100.2
    assert contents(coalescer.close()) == ["Hello"]
    assert coalescer.deadline is None


def test_flushes_when_buffer_size_is_reached_and_never_splits_a_delta() -> None:
    coalescer, _ = make(size=10)
    coalescer.feed(role())
    assert coalescer.feed(text("abcd")) == b""
    assert coalescer.feed(text("efgh")) == b""
    assert contents(coalescer.feed(text("ij"))) == ["abcdefghij"]
    assert coalescer.deadline is None
    assert contents(coalescer.feed(text("x" * 25))) == ["x" * 25]
    assert coalescer.feed(text("tail")) == b""


def test_size_counts_bytes_not_characters() -> None:
    coalescer, _ = make(size=6)
    coalescer.feed(role())
    assert coalescer.feed(text("éé")) == b""  # 4 bytes
    assert contents(coalescer.feed(text("é"))) == ["ééé"]


def test_deadline_runs_from_the_first_pending_text() -> None:
    coalescer, clock = make(timeout=0.2)
    coalescer.feed(role())
    coalescer.feed(text("a"))
    clock.now += 0.15
    coalescer.feed(text("b"))
    assert coalescer.deadline == 100.2
    assert coalescer.tick() == b""
    clock.now = 100.2
    assert contents(coalescer.tick()) == ["ab"]
    assert coalescer.deadline is None and coalescer.tick() == b""


def test_overdue_text_goes_out_before_new_text_starts_a_new_window() -> None:
    coalescer, clock = make(timeout=0.2)
    coalescer.feed(role())
    coalescer.feed(text("old"))
    clock.now += 1.0
    assert contents(coalescer.feed(text("new"))) == ["old"]
    assert coalescer.deadline == clock.now + 0.2
    assert contents(coalescer.close()) == ["new"]


def test_tool_call_and_finish_flush_text_then_pass_unchanged() -> None:
    coalescer, _ = make()
    coalescer.feed(role())
    coalescer.feed(text("Let me check."))
    out = coalescer.feed(TOOL)
    assert events(out)[1:] == events(TOOL) and contents(out) == ["Let me check."]
    assert out.endswith(TOOL)
    args = chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})
    assert coalescer.feed(args) == args
    coalescer.feed(text("more"))
    out = coalescer.feed(FINISH)
    assert contents(out) == ["more"] and out.endswith(FINISH)


def test_usage_and_done_follow_the_flushed_text_in_order() -> None:
    coalescer, _ = make()
    out = coalescer.feed(role() + text("a") + text("b") + FINISH + USAGE + DONE)
    assert out == role() + out[len(role()):]
    payloads = events(out)
    assert len(payloads) == 5
    assert json.loads(payloads[1])["choices"][0]["delta"] == {"content": "ab"}
    assert [payloads[2], payloads[3], payloads[4]] == events(FINISH + USAGE + DONE)
    assert coalescer.finished and coalescer.close() == b""


def test_error_event_passes_through_after_pending_text_and_ends_the_stream() -> None:
    coalescer, _ = make()
    coalescer.feed(role() + text("partial"))
    out = coalescer.feed(ERROR)
    assert contents(out) == ["partial"] and out.endswith(ERROR)
    assert coalescer.finished
    assert coalescer.feed(text("late") + DONE) == b""


def test_merged_chunk_keeps_the_other_top_level_fields() -> None:
    coalescer, _ = make()
    coalescer.feed(role())
    for piece in "ab":
        coalescer.feed(encode_data(
            b'{"id":"c","object":"chat.completion.chunk","created":7,"model":"m",'
            b'"system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"'
            + piece.encode()
            + b'"},"logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}'))
    merged = (b'{"id":"c","object":"chat.completion.chunk","created":7,"model":"m",'
              b'"system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"ab"},'
              b'"logprobs":null,"finish_reason":null}],"usage":null}')
    assert events(coalescer.close()) == [merged]


def test_escapes_concatenate_exactly() -> None:
    coalescer, _ = make()
    coalescer.feed(role())
    coalescer.feed(encode_data(b'{"choices":[{"index":0,"delta":{"content":"q\\"\\n\\ud83d\\ude00"}}]}'))
    second = b'{"choices":[{"index":0,"delta":{"content":"\\\\ \xc3\xa9\\u00e9"}}]}'
    coalescer.feed(encode_data(second))
    assert contents(coalescer.close()) == ['q"\n\U0001F600\\ éé']


def test_a_lone_surrogate_is_not_merged_but_passed_on() -> None:
    coalescer, _ = make()
    coalescer.feed(role() + text("a"))
    lone = encode_data(b'{"choices":[{"index":0,"delta":{"content":"\\ud83d"}}]}')
    out = coalescer.feed(lone)
    assert contents(out) == ["a", "\ud83d"] and out.endswith(lone)


def test_chunks_it_cannot_merge_pass_through() -> None:
    coalescer, _ = make()
    coalescer.feed(role())
    odd = [
        chunk({"content": "r", "reasoning_content": "think"}),
        chunk({"content": None, "refusal": "no"}),
        encode_data(b'{"choices":[{"index":0,"delta":{"content":"x"},"logprobs":{"content":[]}}]}'),
        encode_data(b"not json"),
        encode_data(b"[1,2]"),
        encode_data(b'{"choices":null}'),
    ]
    for piece in odd:
        assert coalescer.feed(piece) == piece


def test_repeated_role_on_text_chunks_still_merges() -> None:
    coalescer, _ = make()
    coalescer.feed(role())
    coalescer.feed(chunk({"role": "assistant", "content": "a"}))
    coalescer.feed(chunk({"role": "assistant", "content": "b"}))
    assert contents(coalescer.close()) == ["ab"]


def test_choices_are_merged_separately() -> None:
    coalescer, _ = make()
    assert coalescer.feed(role(0) + role(1)) == role(0) + role(1)
    coalescer.feed(text("a", 0) + text("x", 1) + text("b", 0) + text("y", 1))
    payloads = [json.loads(p)["choices"][0] for p in events(coalescer.close())]
    assert [(c["index"], c["delta"]["content"]) for c in payloads] == [(0, "ab"), (1, "xy")]


def stream() -> bytes:
    words = [text(f"w{i} ") for i in range(30)]
    pieces = [role(), *words, TOOL, text("after"), FINISH, USAGE, DONE]
    return b"".join(pieces)


def test_one_byte_at_a_time_equals_whole() -> None:
    data = stream()
    whole, _ = make(size=16)
    expected = whole.feed(data) + whole.close()
    split, _ = make(size=16)
    out = b"".join(split.feed(data[i:i + 1]) for i in range(len(data))) + split.close()
    assert out == expected
    assert "".join(contents(out)) == "".join(f"w{i} " for i in range(30)) + "after"
    assert len(events(out)) < len(events(data))


@settings(max_examples=150, deadline=None)
@given(
    deltas=st.lists(st.text(max_size=12), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=20),
    size=st.integers(min_value=1, max_value=64),
    ticks=st.lists(st.booleans(), max_size=40),
)
def test_text_and_control_order_survive_any_split_and_timing(
    deltas: list[str], cuts: list[int], size: int, ticks: list[bool]
) -> None:
    """Invariant: the text is the same, control events keep their order, never more events."""
    data = role() + b"".join(text(d) for d in deltas) + FINISH + USAGE + DONE
    coalescer, clock = make(size=size, timeout=0.2)
    out = b""
    start = 0
    for n, cut in enumerate([*sorted({c % (len(data) + 1) for c in cuts}), len(data)]):
        out += coalescer.feed(data[start:cut])
        start = cut
        if n < len(ticks) and ticks[n]:
            clock.now += 0.3
            out += coalescer.tick()
    out += coalescer.close()
    assert "".join(contents(out)) == "".join(deltas)
    got = events(out)
    assert got[0] == events(role())[0]
    assert got[-3:] == events(FINISH + USAGE + DONE)
    assert len(got) <= len(events(data))
