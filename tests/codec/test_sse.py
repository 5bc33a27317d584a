"""Tests for the SSE codec: every test body runs against the pure (py) and native twins.

Inputs are fed whole and one byte at a time (chunk boundaries are where stream parsers break);
hypothesis checks that the twins agree. Encoding and round trips: ``test_sse_encode``.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelmux import _accel
from modelmux.codec import sse as face
from modelmux.codec import sse_common
from modelmux.errors import ModelMuxError, UpstreamError
from tests.codec import PROPERTY, decode, ev, feed_all, split_at
from tests.fuzz_targets import load
from tests.twins import import_twin, twin_params

Event = sse_common.Event
SSEProtocolError = sse_common.SSEProtocolError


def test_twins_share_event_and_error_classes(sse: ModuleType) -> None:
    assert sse.Event is Event
    assert sse.SSEProtocolError is SSEProtocolError


def test_face_exports_the_active_twin() -> None:
    expected = "modelmux.codec._sse_py"
    if not _accel.pure_forced() and _accel.native_available("sse"):
        expected = "modelmux._speedups.sse"
    assert face._impl.__name__ == expected
    for name in face.__all__:
        assert getattr(face, name) is getattr(face._impl, name)


def test_error_carries_bad_gateway_status() -> None:
    err = SSEProtocolError("broken")
    assert isinstance(err, UpstreamError) and isinstance(err, ModelMuxError)
    assert err.status == 502


def test_event_defaults_equality_and_repr() -> None:
    assert Event() == Event("message", b"", None, None)
    assert Event(data=b"x") != Event(data=b"y")
    assert repr(Event("e", b"d", "1", 2)) == "Event(event='e', data=b'd', id='1', retry=2)"
    assert not hasattr(Event(), "__dict__")


def test_single_event_has_default_type(sse: ModuleType) -> None:
    assert decode(sse, b"data: hello\n\n") == [ev(b"hello")]


def test_event_field_sets_type(sse: ModuleType) -> None:
    data = b"event: content_block_delta\ndata: {}\n\n"
    assert decode(sse, data) == [ev(b"{}", "content_block_delta")]


def test_event_type_changes_between_events(sse: ModuleType) -> None:
    data = b"event: ab\ndata: 1\n\nevent: cd\ndata: 2\n\nevent: ab\ndata: 3\n\ndata: 4\n\n"
    assert decode(sse, data) == [ev(b"1", "ab"), ev(b"2", "cd"), ev(b"3", "ab"), ev(b"4")]


def test_multi_line_data_joined_with_lf(sse: ModuleType) -> None:
    assert decode(sse, b"data: a\ndata: b\ndata:\ndata: c\n\n") == [ev(b"a\nb\n\nc")]


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"], ids=["lf", "cr", "crlf"])
def test_line_ends(sse: ModuleType, eol: bytes) -> None:
    data = b"event: e" + eol + b"data: a" + eol + b"data: b" + eol + eol + b"data: c" + eol + eol
    assert decode(sse, data) == [ev(b"a\nb", "e"), ev(b"c")]


def test_mixed_line_ends(sse: ModuleType) -> None:
    assert decode(sse, b"data: a\rdata: b\r\ndata: c\n\r\n\r") == [ev(b"a\nb\nc")]


def test_cr_then_lf_across_feeds_is_one_line_end(sse: ModuleType) -> None:
    decoder = sse.SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []  # the LF pairs with the CR: no blank line yet
    assert decoder.feed(b"\n") == [ev(b"a")]


def test_cr_ends_its_line_without_waiting(sse: ModuleType) -> None:
    decoder = sse.SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\r") == [ev(b"a")]
    assert decoder.feed(b"\n") == []  # pairs with the previous CR
    assert decoder.feed(b"\ndata: b\n\n") == [ev(b"b")]  # a blank line with no data


def test_held_cr_then_other_byte(sse: ModuleType) -> None:
    decoder = sse.SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []  # an empty feed does not forget the CR
    assert decoder.feed(b"data: b\r\r") == [ev(b"a\nb")]


def test_comments_ignored(sse: ModuleType) -> None:
    data = b":\n: keep-alive\ndata: a\n:data: no\ndata: b\n\n: tail\n\n"
    assert decode(sse, data) == [ev(b"a\nb")]


def test_field_without_colon_has_empty_value(sse: ModuleType) -> None:
    assert decode(sse, b"data\n\n") == [ev(b"")]
    assert decode(sse, b"data\ndata\n\n") == [ev(b"\n")]
    assert decode(sse, b"event: x\nevent\ndata: y\n\n") == [ev(b"y")]


def test_only_one_leading_space_stripped(sse: ModuleType) -> None:
    data = b"data:x\n\ndata:  x\n\ndata: \n\nevent:  e\ndata:x \n\n"
    assert decode(sse, data) == [ev(b"x"), ev(b" x"), ev(b""), ev(b"x ", " e")]


def test_value_keeps_later_colons(sse: ModuleType) -> None:
    assert decode(sse, b'data: {"a": ":b"}\n\n') == [ev(b'{"a": ":b"}')]


def test_unknown_and_wrong_case_fields_ignored(sse: ModuleType) -> None:
    assert decode(sse, b"Data: x\nfoo: bar\nretries: 1\ndata : y\n\n") == []


def test_id_persists_and_resets(sse: ModuleType) -> None:
    data = b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 2\ndata: d\n\n"
    assert decode(sse, data) == [ev(b"a", id="1"), ev(b"b", id="1"), ev(b"c"), ev(b"d", id="2")]


def test_id_with_nul_ignored(sse: ModuleType) -> None:
    assert decode(sse, b"id: 1\nid: 2\x003\ndata: a\n\n") == [ev(b"a", id="1")]


def test_id_committed_by_blank_line_even_without_data(sse: ModuleType) -> None:
    decoder = sse.SSEDecoder()
    assert decoder.feed(b"id: 7\n\ndata: x\n\nid: 8\ndata: y\n") == [ev(b"x", id="7")]
    assert decoder.last_event_id == "7"  # the unterminated event's id is not committed
    assert decoder.close() == []
    assert decoder.last_event_id == "7"


def test_retry_digits_only(sse: ModuleType) -> None:
    data = (
        b"retry: 1500\ndata: a\n\ndata: b\n\n"
        b"retry: 1a\nretry: -1\nretry:\nretry: \xd9\xa1\nretry:  2\ndata: c\n\n"
    )
    assert decode(sse, data) == [ev(b"a", retry=1500), ev(b"b"), ev(b"c")]


def test_retry_without_data_updates_decoder_only(sse: ModuleType) -> None:
    decoder = sse.SSEDecoder()
    assert decoder.retry is None
    assert decoder.feed(b"retry: 3000\n\n") == []
    assert decoder.retry == 3000
    assert decoder.feed(b"retry: 999999999999999999\ndata: x\n\n") == [
        ev(b"x", retry=999999999999999999)
    ]
    assert decoder.feed(b"retry: 1000000000000000000\ndata: y\n\n") == [ev(b"y")]
    assert decoder.feed(b"retry: " + b"7" * 5000 + b"\ndata: z\n\n") == [ev(b"z")]
    assert decoder.retry == 999999999999999999


def test_leading_bom_stripped_once(sse: ModuleType) -> None:
    bom = b"\xef\xbb\xbf"
    assert decode(sse, bom + b"data: a\n\n") == [ev(b"a")]
    assert decode(sse, bom + bom + b"data: a\n\n") == []  # second BOM belongs to the field name
    assert decode(sse, b"data: a\n\n" + bom + b"data: b\n\n") == [ev(b"a")]
    assert decode(sse, b"\xef\xbbdata: a\n\n") == []
    assert decode(sse, b"\xef\n\xbb\xbfdata: a\n\n") == []
    assert decode(sse, bom) == []


def test_bom_split_across_feeds(sse: ModuleType) -> None:
    assert feed_all(sse, [b"\xef", b"\xbb", b"\xbfdata: a\n\n"]) == [ev(b"a")]
    assert feed_all(sse, [b"\xef\xbb", b"\xbf", b"data: a\n", b"\n"]) == [ev(b"a")]
    assert feed_all(sse, [b"\xef\xbb", b"\xbf\xef\xbb\xbfdata: a\n\n"]) == []


def test_empty_data_buffer_not_dispatched_and_type_reset(sse: ModuleType) -> None:
    assert decode(sse, b"event: x\n\ndata: y\n\n") == [ev(b"y")]
    assert decode(sse, b"\n\n\n") == []


def test_unterminated_event_discarded_at_close(sse: ModuleType) -> None:
    assert decode(sse, b"data: a\n\ndata: b\n") == [ev(b"a")]
    assert decode(sse, b"data: a\n\ndata: b") == [ev(b"a")]
    decoder = sse.SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: b\n") == [ev(b"a")]
    assert decoder.close() == []
    assert decoder.close() == []


def test_non_utf8_kept_raw_in_data_replaced_in_names(sse: ModuleType) -> None:
    data = b"event: a\xffb\nid: \xfe\ndata: \xff\x00\xc3\n\n"
    assert decode(sse, data) == [ev(b"\xff\x00\xc3", "a\ufffdb", "\ufffd")]


def test_accepts_bytes_like(sse: ModuleType) -> None:
    decoder = sse.SSEDecoder()
    assert decoder.feed(bytearray(b"data: a\n")) == []
    assert decoder.feed(memoryview(b"\n")) == [ev(b"a")]


@pytest.mark.parametrize(
    ("line", "expected"),
    [(b"data: 12", [ev(b"12")]), (b"data:12", [ev(b"12")]), (b"xxxxxxxx", []), (b"", [])],
)
def test_line_at_limit_accepted(sse: ModuleType, line: bytes, expected: list[Event]) -> None:
    assert decode(sse, line + b"\r\n\n", max_line=8) == expected


def raises_when_fed(sse: ModuleType, pieces: list[bytes], **kwargs: int) -> None:
    decoder = sse.SSEDecoder(**kwargs)
    with pytest.raises(SSEProtocolError) as info:
        for piece in pieces:
            decoder.feed(piece)
    assert info.value.status == 502
    with pytest.raises(SSEProtocolError):
        decoder.feed(b"data: ok\n\n")  # a failed decoder stays failed
    with pytest.raises(SSEProtocolError):
        decoder.close()


@pytest.mark.parametrize(
    "data",
    [b"data: 123\n\n", b"data: a\n\ndata: 123", b"\xef\xbb\xbfdata:1234567\r", b"123456789"],
    ids=["terminated", "unterminated", "after-bom", "no-eol"],
)
def test_line_over_limit_raises(sse: ModuleType, data: bytes) -> None:
    raises_when_fed(sse, [data], max_line=8)
    raises_when_fed(sse, [data[i : i + 1] for i in range(len(data))], max_line=8)


def test_lines_before_the_long_one_still_count(sse: ModuleType) -> None:
    decoder = sse.SSEDecoder(max_line=8)
    with pytest.raises(SSEProtocolError):
        decoder.feed(b"id: 1\n\nretry: 5\ndata: 123456789\nretry: 6\n")
    assert (decoder.last_event_id, decoder.retry) == ("1", 5)


def test_feed_after_close_is_a_caller_bug(sse: ModuleType) -> None:
    decoder = sse.SSEDecoder()
    decoder.close()
    with pytest.raises(RuntimeError):
        decoder.feed(b"data: a\n\n")


def test_negative_max_line_rejected(sse: ModuleType) -> None:
    with pytest.raises(ValueError):
        sse.SSEDecoder(max_line=-1)


run_trace = load("sse_fuzz").trace  # the fuzz target's record of one run, shared with it


_sse_ish = st.lists(
    st.sampled_from(
        [b"data", b"event", b"id", b"retry", b":", b": ", b" ", b"\r", b"\n", b"\r\n"]
        + [b"12", b"9" * 19, b"\x00", b"\xef\xbb\xbf", b"\xef", b"x"]
    )
    | st.binary(max_size=4),
    max_size=40,
).map(b"".join)


@pytest.fixture(scope="module")
def twins() -> list[ModuleType]:
    params = twin_params("sse", "modelmux.codec._sse_py")
    return [import_twin(str(param.values[0])) for param in params]  # type: ignore[attr-defined]


@PROPERTY
@given(
    blob=_sse_ish | st.binary(max_size=64),
    max_line=st.sampled_from([0, 3, 8, 1 << 20]),
    cut_data=st.data(),
)
def test_twins_agree_on_any_bytes(
    twins: list[ModuleType], blob: bytes, max_line: int, cut_data: st.DataObject
) -> None:
    cuts = cut_data.draw(st.lists(st.integers(0, len(blob)), max_size=8))
    bytewise = [blob[i : i + 1] for i in range(len(blob))]
    outcomes = []
    for pieces in ([blob], split_at(blob, cuts), bytewise):
        traces = [run_trace(module, pieces, max_line) for module in twins]
        assert all(trace == traces[0] for trace in traces)
        trace = traces[0]
        failed = trace[-2] == "error"
        events = None if failed else [e for step in trace[:-1] for e in step]
        outcomes.append((failed, events))
    assert all(outcome == outcomes[0] for outcome in outcomes)  # cuts never change the result
