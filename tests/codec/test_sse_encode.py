"""The SSE encoders on both twins, and encode/decode round trips under random cuts."""

from __future__ import annotations

import re
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelmux.codec.sse_common import Event
from tests.codec import PROPERTY, decode, ev, feed_all, split_at


def test_encode_event_plain(sse: ModuleType) -> None:
    assert sse.encode_event(b"x") == b"data: x\n\n"
    assert sse.encode_event("h\u00e9") == b"data: h\xc3\xa9\n\n"
    assert sse.encode_event(b"") == b"data: \n\n"
    assert sse.encode_event(b"d", event="e", id="7", retry=10) == (
        b"event: e\nid: 7\nretry: 10\ndata: d\n\n"
    )


def test_encode_event_splits_every_line_end(sse: ModuleType) -> None:
    encoded = sse.encode_event(b"a\rb\nc\r\nd\n")
    assert encoded == b"data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n"
    assert decode(sse, encoded) == [ev(b"a\nb\nc\nd\n")]


@pytest.mark.parametrize(
    "kwargs",
    [{"event": "a\nb"}, {"event": "a\r"}, {"id": "1\r\n"}, {"id": "1\x002"}, {"retry": -1}],
)
def test_encode_event_rejects_what_cannot_round_trip(
    sse: ModuleType, kwargs: dict[str, object]
) -> None:
    with pytest.raises(ValueError):
        sse.encode_event(b"x", **kwargs)


def test_encode_data_fast_path_and_fallback(sse: ModuleType) -> None:
    assert sse.encode_data(b'{"a":1}') == b'data: {"a":1}\n\n'
    assert sse.encode_data(b"") == b"data: \n\n"
    assert sse.encode_data(bytearray(b"x")) == b"data: x\n\n"
    for payload in (b"a\nb", b"a\rb", b"a\r\nb", b"\n"):
        assert sse.encode_data(payload) == sse.encode_event(payload)


def test_encode_comment_and_done(sse: ModuleType) -> None:
    assert sse.encode_comment() == b":\n\n"
    assert sse.encode_comment("ping") == b": ping\n\n"
    assert sse.encode_comment("a\r\nb") == b": a\n: b\n\n"
    assert decode(sse, sse.encode_comment("a\nb") + sse.DONE) == [ev(b"[DONE]")]
    assert sse.DONE == b"data: [DONE]\n\n"


_LINE_END = re.compile(rb"\r\n|\r|\n")
_single_line_text = st.text(max_size=12).filter(lambda s: "\r" not in s and "\n" not in s)
_data = st.lists(
    st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b" ", b":", b"\x00", b"\xff", b"data: "])
    | st.binary(max_size=6),
    max_size=8,
).map(b"".join)
_event_args = st.tuples(
    _data | st.text(max_size=8),
    st.none() | _single_line_text,
    st.none() | _single_line_text.filter(lambda s: "\x00" not in s),
    st.none() | st.integers(min_value=0, max_value=10**12),
)


@PROPERTY
@given(events=st.lists(_event_args, max_size=8), cut_data=st.data())
def test_round_trip_under_random_cuts(
    sse: ModuleType,
    events: list[tuple[bytes | str, str | None, str | None, int | None]],
    cut_data: st.DataObject,
) -> None:
    blob = b"".join(sse.encode_event(d, event=e, id=i, retry=r) for d, e, i, r in events)
    expected = []
    last_id: str | None = None
    for data, event, id_, retry in events:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        last_id = (id_ or None) if id_ is not None else last_id
        expected.append(Event(event or "message", _LINE_END.sub(b"\n", raw), last_id, retry))
    cuts = cut_data.draw(st.lists(st.integers(0, len(blob)), max_size=12))
    assert feed_all(sse, split_at(blob, cuts)) == expected
    assert decode(sse, blob) == expected
