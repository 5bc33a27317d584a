"""The sans-I/O HTTP/1.1 server connection: each twin (py, native) and the h11 reference.

Bytes in, events out, no sockets: framing, keep-alive, pipelining, 100-continue, limits, the
request-smuggling defences, and the response framing each backend writes.
"""

from __future__ import annotations

from typing import Any

import pytest

from modelmux.http1.common import (
    END,
    NEED_DATA,
    PAUSED,
    HTTP1LocalError,
    HTTP1ProtocolError,
    RequestHead,
)
from modelmux.http1.server_h11 import H11Connection
from tests.twins import import_twin, twin_params

FAST = twin_params("http1", "modelmux.http1._server_py")


def _factory(param: str) -> Any:
    return H11Connection if param == "h11" else import_twin(param).ServerConnection


@pytest.fixture(params=[*FAST, pytest.param("h11", id="h11")])
def make(request: pytest.FixtureRequest) -> Any:
    """A backend class, any of the three."""
    return _factory(request.param)


@pytest.fixture(params=FAST)
def fast(request: pytest.FixtureRequest) -> Any:
    """A fast twin only (for where it is deliberately stricter than h11)."""
    return _factory(request.param)


def events(conn: Any, data: bytes, *, step: int = 0) -> list[object]:
    """Every event for ``data`` fed whole (or ``step`` bytes at a time); body pieces joined."""
    out: list[object] = []
    for i in range(0, max(len(data), 1), step or max(len(data), 1)):
        conn.receive_data(data[i:i + step] if step else data)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            if type(event) is bytes and out and type(out[-1]) is bytes:
                out[-1] += event
            else:
                out.append(event)
            if event is PAUSED:
                return out
    return out


def status_of(conn: Any, data: bytes) -> int:
    with pytest.raises(HTTP1ProtocolError) as info:
        events(conn, data)
    return info.value.status


def test_get_then_keep_alive_cycle(make: Any) -> None:
    conn = make(65536)
    head, end = events(conn, b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: T\r\n\r\n")
    assert isinstance(head, RequestHead) and end is END
    assert (head.method, head.target, head.http_version) == (b"GET", b"/a?b=1", b"1.1")
    assert head.headers == [(b"host", b"x"), (b"user-agent", b"T")]
    assert head.keep_alive and not head.chunked and head.content_length is None
    assert conn.request_complete and not conn.reusable()
    out = conn.send_response(200, [(b"content-length", b"2")], end=True, body=b"ok")
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"\r\n\r\nok")
    assert conn.reusable()
    conn.start_next_cycle()
    assert isinstance(events(conn, b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n")[0], RequestHead)


def test_pipelined_request_waits_as_paused_until_the_next_cycle(make: Any) -> None:
    conn = make(65536)
    two = b"POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
    head, body, end, paused = events(conn, two)
    assert head.content_length == 3 and body == b"abc" and end is END and paused is PAUSED
    conn.send_response(204, [], end=True)
    conn.start_next_cycle()
    assert conn.trailing.startswith(b"GET /2")
    assert events(conn, b"")[0].target == b"/2"


@pytest.mark.parametrize("step", [0, 1, 7])
def test_chunked_body_with_extensions_and_trailers(make: Any, step: int) -> None:
    data = (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"
            b"5;name=value\r\nhello\r\n1\r\n \r\n000A\r\n0123456789\r\n0\r\nX-Sum: 1\r\n\r\n")
    head, body, end = events(make(65536), data, step=step)
    assert head.chunked and head.content_length is None
    assert (b"transfer-encoding", b"chunked") in head.headers
    assert body == b"hello 0123456789" and end is END


def test_bare_lf_line_ends_are_accepted_as_h11_does(make: Any) -> None:
    head, body, end = events(make(65536), b"POST / HTTP/1.1\nHost: x\nContent-Length: 2\n\nhi")
    assert head.headers == [(b"host", b"x"), (b"content-length", b"2")] and body == b"hi"


def test_equal_content_lengths_fold_into_one(make: Any) -> None:
    data = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\ncontent-length: 2\r\n\r\nhi"
    head, body, _ = events(make(65536), data)
    assert head.headers == [(b"host", b"x"), (b"content-length", b"2")] and body == b"hi"


def test_expect_100_continue(make: Any) -> None:
    conn = make(65536)
    (head,) = events(conn, b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
    assert head.expect_continue and conn.waiting_for_continue and conn.in_body
    assert conn.send_continue().startswith(b"HTTP/1.1 100 ")
    assert conn.send_continue() == b""  # once


def test_http_1_0_and_connection_close_do_not_keep_alive(make: Any) -> None:
    conn = make(65536)
    head, _ = events(conn, b"GET / HTTP/1.0\r\n\r\n")
    assert head.http_version == b"1.0" and not head.keep_alive
    out = conn.send_response(200, [], end=False) + conn.send_data(b"raw") + conn.send_end()
    assert b"transfer-encoding" not in out.lower() and out.endswith(b"\r\n\r\nraw")
    assert b"connection: close" in out.lower() and not conn.reusable()
    conn = make(65536)
    head, _ = events(conn, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n")
    assert not head.keep_alive
    conn.send_response(200, [(b"content-length", b"0")], end=True)
    assert not conn.reusable()


def test_streamed_response_is_chunked_and_head_gets_no_body(make: Any) -> None:
    conn = make(65536)
    events(conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    out = conn.send_response(200, [(b"content-type", b"text/plain")], end=False)
    assert b"transfer-encoding: chunked\r\n" in out.lower()
    assert conn.send_data(b"hello") == b"5\r\nhello\r\n" and conn.send_data(b"") == b""
    assert conn.send_end() == b"0\r\n\r\n" and conn.reusable()
    conn = make(65536)
    events(conn, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    out = conn.send_response(200, [(b"content-type", b"text/plain")], end=False)
    assert out.endswith(b"\r\n\r\n") and b"transfer-encoding: chunked" in out.lower()  # as for GET
    assert conn.send_end() == b"" and conn.reusable()


def test_response_header_with_crlf_is_refused(make: Any) -> None:
    conn = make(65536)
    events(conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(HTTP1LocalError):
        conn.send_response(200, [(b"x-a", b"1\r\nset-cookie: evil")], end=True)


def test_fast_writer_refuses_headers_that_are_not_bytes(fast: Any) -> None:
    conn = fast(65536)
    events(conn, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(HTTP1LocalError):
        conn.send_response(200, [(b"x-a", "text")], end=True)  # type: ignore[list-item]


@pytest.mark.parametrize(("data", "status"), [
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),  # space before the colon
    (b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400),
    (b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"\x16\x03\x01\x02\x00\x01", 400),  # TLS on the cleartext port
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 21 + b"\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n", 400),
])
def test_malformed_requests_are_rejected_with_their_status(make: Any, data: bytes, status: int) -> None:
    conn = make(65536)
    assert status_of(conn, data) == status
    with pytest.raises(HTTP1ProtocolError):  # and it stays failed
        conn.next_event()
    assert not conn.response_started  # so the protocol can still answer the error


def test_head_too_large_is_431_whole_or_in_pieces(make: Any) -> None:
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
    assert status_of(make(1024), big) == 431
    conn = make(1024)
    conn.receive_data(big[:1500])
    with pytest.raises(HTTP1ProtocolError) as info:
        conn.next_event()
    assert info.value.status == 431


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  continued\r\n\r\n",  # obs-fold (RFC 9112 5.2)
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    b"GET / HTTP/1.2\r\nHost: x\r\n\r\n",
])
def test_fast_path_is_stricter_than_h11_on_smuggling_vectors(fast: Any, data: bytes) -> None:
    events(H11Connection(65536), data)  # h11 accepts these
    assert status_of(fast(65536), data) in (400, 505)


def test_backend_names_and_the_server_setting(tmp_path: Any) -> None:
    from modelmux.config.problems import ConfigError
    from modelmux.http1.server import ServerConnection, backend
    from tests.config.helpers import load, write

    assert backend("h11") is H11Connection and backend("fast") is ServerConnection
    with pytest.raises(ValueError, match="unknown HTTP/1.1 backend"):
        backend("h2")
    config = write(tmp_path / "c.toml", '[server]\nhttp1 = "h11"\n')
    assert load(tmp_path, config).config.server.http1 == "h11"
    assert load(tmp_path, environ={"MODELMUX_SERVER_HTTP1": "h11"}).config.server.http1 == "h11"
    with pytest.raises(ConfigError, match="http1"):
        load(tmp_path, write(tmp_path / "bad.toml", '[server]\nhttp1 = "turbo"\n'))
