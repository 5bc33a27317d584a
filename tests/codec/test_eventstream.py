"""The event stream decoder: every byte split gives the same messages; CRCs and lengths are
checked; header value types are read; the error is sticky. Every test runs on both twins."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterator
from zlib import crc32

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelmux.codec import _eventstream_py as pure_twin
from modelmux.codec.eventstream import EventStreamError, encode_message, parse_headers
from tests.twins import import_twin, twin_params

EventStreamDecoder = pure_twin.EventStreamDecoder


@pytest.fixture(scope="module", autouse=True,
                params=twin_params("eventstream", pure_twin.__name__))
def twin(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run every test of this module on each twin (module scope: hypothesis allows no other)."""
    global EventStreamDecoder
    EventStreamDecoder = import_twin(request.param).EventStreamDecoder
    yield request.param
    EventStreamDecoder = pure_twin.EventStreamDecoder

EVENT = {":event-type": "contentBlockDelta", ":content-type": "application/json",
         ":message-type": "event"}
STREAM = b"".join([
    encode_message({**EVENT, ":event-type": "messageStart"}, b'{"role":"assistant","p":"ab"}'),
    encode_message(EVENT, '{"delta":{"text":"Héllo ✓"},"contentBlockIndex":0}'.encode()),
    encode_message({}, b""),
    encode_message({":message-type": "exception", ":exception-type": "throttlingException"},
                   b'{"message":"slow down"}'),
])


def decode(pieces: list[bytes]) -> list[tuple[dict[str, object], bytes]]:
    decoder = EventStreamDecoder()
    out = []
    for piece in pieces:
        out += [(m.headers, m.payload) for m in decoder.feed(piece)]
    decoder.close()
    return out


WHOLE = decode([STREAM])


def test_whole_stream() -> None:
    assert [h.get(":event-type") for h, _ in WHOLE] == [
        "messageStart", "contentBlockDelta", None, None]
    assert WHOLE[1][1] == '{"delta":{"text":"Héllo ✓"},"contentBlockIndex":0}'.encode()
    assert WHOLE[3][0][":exception-type"] == "throttlingException"


def test_every_single_cut_and_bytewise() -> None:
    for at in range(len(STREAM) + 1):
        assert decode([STREAM[:at], STREAM[at:]]) == WHOLE, at
    assert decode([STREAM[i:i + 1] for i in range(len(STREAM))]) == WHOLE


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_any_split(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    assert decode([STREAM[a:b] for a, b in itertools.pairwise(points)]) == WHOLE


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=20).filter(lambda s: len(s.encode()) < 256),
                       st.text(max_size=30), max_size=4), st.binary(max_size=300))
def test_round_trip(headers: dict[str, str], payload: bytes) -> None:
    (message,) = EventStreamDecoder().feed(encode_message(headers, payload))
    assert (message.headers, message.payload) == (headers, payload)


@pytest.mark.parametrize("at", [4, 9, 20, -6, -1])
def test_a_flipped_byte_is_a_crc_error(at: int) -> None:
    wire = bytearray(encode_message(EVENT, b'{"delta":{"text":"x"}}'))
    wire[at] ^= 0x20
    decoder = EventStreamDecoder()
    with pytest.raises(EventStreamError, match="CRC"):
        decoder.feed(bytes(wire))
    with pytest.raises(EventStreamError):  # sticky
        decoder.feed(b"")


def test_impossible_lengths_and_size_limit() -> None:
    prelude = struct.pack(">II", 10, 0)
    with pytest.raises(EventStreamError, match="impossible"):
        EventStreamDecoder().feed(prelude + struct.pack(">I", crc32(prelude)))
    big = encode_message({}, b"x" * 100)
    with pytest.raises(EventStreamError, match="limit"):
        EventStreamDecoder(max_message=64).feed(big[:12])


def test_truncated_input_fails_on_close() -> None:
    decoder = EventStreamDecoder()
    assert decoder.feed(STREAM[:-3]) != []
    assert decoder.pending > 0
    with pytest.raises(EventStreamError, match="ended inside"):
        decoder.close()


def test_every_header_type() -> None:
    def h(name: str, kind: int, raw: bytes) -> bytes:
        return bytes((len(name),)) + name.encode() + bytes((kind,)) + raw

    data = (h("t", 0, b"") + h("f", 1, b"") + h("b", 2, b"\xff") + h("s", 3, b"\x01\x02")
            + h("i", 4, struct.pack(">i", -5)) + h("l", 5, struct.pack(">q", 2**40))
            + h("y", 6, b"\x00\x02\x00\x01") + h("str", 7, b"\x00\x02ok")
            + h("ts", 8, struct.pack(">q", 1700000000000)) + h("u", 9, bytes(range(16))))
    assert parse_headers(data) == {"t": True, "f": False, "b": -1, "s": 258, "i": -5,
                                   "l": 2**40, "y": b"\x00\x01", "str": "ok",
                                   "ts": 1700000000000, "u": bytes(range(16))}
    for bad in (h("x", 10, b""), h("x", 7, b"\x00\x09ab"), b"\x05ab", h("x", 4, b"\x00")):
        with pytest.raises(EventStreamError):
            parse_headers(bad)


def test_good_messages_before_a_bad_one_come_out_first() -> None:
    bad = bytearray(encode_message(EVENT, b"{}"))
    bad[-1] ^= 1
    decoder = EventStreamDecoder()
    assert len(decoder.feed(STREAM[:len(STREAM) // 2] + STREAM[len(STREAM) // 2:] + bad)) == 4
    with pytest.raises(EventStreamError, match="CRC"):
        decoder.close()


def test_the_native_crc_is_zlibs(twin: str) -> None:
    if twin == pure_twin.__name__:
        pytest.skip("the pure twin calls zlib.crc32 itself")
    native_crc = import_twin(twin).crc32
    data = bytes(range(256)) * 3
    for size in (0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 300, 768):
        assert native_crc(data[:size]) == crc32(data[:size]), size
