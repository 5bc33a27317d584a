"""The native HTTP/1.1 client twin against the pure one, event for event and error for error.

The native ``ClientConnection`` is its own typed code, not the pure source compiled, so
hostile response bytes fed in random pieces (with or without the peer's close) and hostile
request heads must give both twins the same events, the same errors with the same messages,
and the same state (``in_body``, ``keep_alive``, ``reusable``) after every step.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelmux import _accel
from modelmux.http1.common import END, NEED_DATA
from tests.twins import import_twin

pytestmark = pytest.mark.skipif(_accel.pure_forced(), reason="compares the twins: needs the native one")

HEAD = b"HTTP/1.1 200 OK\r\n"
_starts = st.sampled_from([b"", HEAD, HEAD + b"Transfer-Encoding: chunked\r\n\r\n",
                           HEAD + b"Content-Length: 5\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\n"])
_pieces = st.sampled_from([
    HEAD, b"HTTP/1.0 200 OK\r\n", b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 204 No\r\n",
    b"Content-Length: 3\r\n", b"Content-Length: 0\r\n", b"Content-Length: 99999999999999999999\r\n",
    b"Transfer-Encoding: chunked\r\n", b"Connection: close\r\n", b"X-A: b\r\n", b"\r\n", b"\n",
    b"\r", b"abc", b"3\r\n", b"3;x=y\r\n", b"3 \t\r\n", b"0\r\n", b"0;e\r\n", b"ff\r\n",
    b"fffffffffffffffffffff\r\n", b"FFFFFFFFFFFFFFFFFFFF\r\n", b"x-t: 1\r\n", b"no colon\r\n",
    b"zz\r\n", b"\x00", b";", b" ", b"\t", b"0", b"1", b"abcdefgh" * 4,
    b"3\r\nabc\r\n", b"1;a=b\r\nz\r\n", b"0\r\n\r\n", b"0\r\nx-t: 1\r\n\r\n", b"0\r\n\n",
    b"00000000000000000003\r\nabc\r\n", b"000000000000000000003\r\nabc\r\n", b"2\r\nab\n",
    b"2\r\nabXY", b"0\r\nno colon\r\n\r\n",
])


def _run(module: str, raw: bytes, cuts: list[int], eof: bool, max_head: int) -> list[object]:
    """Everything one twin does with ``raw`` fed in pieces: events, errors and state."""
    parser = import_twin(module).ClientConnection(max_head)
    parser.send_request(b"POST", b"/v1/x", [(b"host", b"up")], b"")
    bounds = sorted({0, len(raw), *(c % (len(raw) + 1) for c in cuts)})
    pieces = [raw[a:b] for a, b in zip(bounds, bounds[1:], strict=False)] + ([b""] if eof else [])
    log: list[object] = []
    for piece in pieces:
        parser.receive_data(piece)
        for _ in range(len(raw) + 8):  # bounded: every event consumes bytes or changes state
            try:
                event = parser.next_event()
            except Exception as exc:  # noqa: BLE001 - the error itself is compared
                log.append((type(exc).__name__, str(exc), getattr(exc, "status", None)))
                break
            log.append(event if event is NEED_DATA or event is END else repr(event))
            if event is NEED_DATA:
                break
        log.append((parser.in_body, parser.keep_alive, parser.reusable()))
    return log


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(_pieces, max_size=16), start=_starts,
       cuts=st.lists(st.integers(0, 400), max_size=6), eof=st.booleans(),
       max_head=st.sampled_from([65536, 40, 8]))
def test_twins_agree_on_hostile_responses(parts: list[bytes], start: bytes, cuts: list[int],
                                          eof: bool, max_head: int) -> None:
    raw = start + b"".join(parts)
    native = _run("modelmux._speedups.http1_client", raw, cuts, eof, max_head)
    assert native == _run("modelmux.http1._client_py", raw, cuts, eof, max_head)


def _send(module: str, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
          body: bytes) -> object:
    parser = import_twin(module).ClientConnection(65536)
    try:
        out: object = parser.send_request(method, target, headers, body)
    except Exception as exc:  # noqa: BLE001 - the error itself is compared
        out = (type(exc).__name__, str(exc))
    return out, parser.keep_alive, parser.in_body


_header = st.tuples(
    st.sampled_from([b"host", b"Content-Length", b"content-length", b"Transfer-Encoding",
                     b"CONNECTION", b"x-a", b"x\r", b"x\x00y", b"content\rlength"]),
    st.sampled_from([b"up", b"2", b"0", b"02", b"close", b"keep-alive, Close", b"a\nb",
                     b"", b"chunked"]))


@settings(max_examples=300, deadline=None)
@given(method=st.sampled_from([b"POST", b"GET", b"", b"P T", b"G\x7f"]),
       target=st.sampled_from([b"/v1/chat", b"/", b"", b"/a b", b"/\x80"]),
       headers=st.lists(_header, max_size=5), body=st.sampled_from([b"", b"{}", b"x" * 10]))
def test_twins_frame_requests_alike(method: bytes, target: bytes,
                                    headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    args = (method, target, headers, body)
    assert _send("modelmux._speedups.http1_client", *args) == _send(
        "modelmux.http1._client_py", *args)


def test_reuse_after_a_response_read_in_pieces() -> None:
    """Consumed bytes are skipped by an index in the native twin: a keep-alive cycle after a
    response cut mid-head and mid-chunk leaves nothing behind."""
    for module in ("modelmux._speedups.http1_client", "modelmux.http1._client_py"):
        parser = import_twin(module).ClientConnection(65536)
        for _ in range(3):
            parser.send_request(b"GET", b"/", [(b"host", b"h")], b"")
            for piece in (b"HTTP/1.1 200 OK\r\nTransfer-Enc", b"oding: chunked\r\n\r\n2\r\nab\r",
                          b"\n1\r\nc\r\n0\r\n\r\n"):
                parser.receive_data(piece)
            events = []
            while (event := parser.next_event()) is not END:
                assert event is not NEED_DATA
                events.append(event)
            assert events[1:] == [b"ab", b"c"], module
            assert parser.reusable()
            parser.start_next_cycle()
