"""The fast HTTP/1.1 client parser (both twins) against h11, and its strictness on desync bytes.

Generated responses (1xx prefaces, Content-Length, chunked with extensions and trailers,
read-until-close, HTTP/1.0, Connection: close) are fed split at every point to the pure twin,
the native twin and h11; heads, bodies, ends and reusability must agree.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelmux import _accel
from modelmux.http1.client import H11Client
from modelmux.http1.common import END, NEED_DATA, HTTP1LocalError, HTTP1ProtocolError
from modelmux.upstream import ConnectionPool, UpstreamClosed, UpstreamProtocolError
from tests.twins import import_twin, twin_params

TWINS = twin_params("http1_client", "modelmux.http1._client_py")
REQUEST = (b"POST", b"/v1/chat/completions", [(b"host", b"up"), (b"content-length", b"2")], b"{}")


def _new(backend: str) -> object:
    """A parser with a request sent: ``h11`` or a twin's module name."""
    parser = H11Client(65536) if backend == "h11" else import_twin(backend).ClientConnection(65536)
    parser.send_request(*REQUEST)
    return parser


def _drive(parser, pieces: list[bytes]) -> tuple[object, ...]:  # type: ignore[no-untyped-def]
    """Feed ``pieces`` then EOF; the head, the body, whether END came, and reusability."""
    head, body, ended = None, b"", False
    for piece in [*(p for p in pieces if p), b""]:  # b"" last: the peer closes
        parser.receive_data(piece)
        while True:
            event = parser.next_event()
            if event is NEED_DATA:
                break
            if event is END:
                ended = True
                return head, body, ended, parser.reusable()
            if type(event) is tuple:
                head = event
            else:
                body += event
    return head, body, ended, False


_names = st.sampled_from([b"X-Id", b"content-type", b"Server", b"x-a", b"Cache-Control"])
_values = st.binary(min_size=0, max_size=12).map(
    lambda b: bytes(c for c in b if 0x21 <= c <= 0x7E).replace(b",", b"")).map(
    lambda v: v.replace(b"close", b"clos"))


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    version = draw(st.sampled_from([b"1.1", b"1.1", b"1.0"]))
    status = draw(st.sampled_from([200, 201, 204, 304, 400, 429, 500, 503]))
    reason = draw(st.sampled_from([b"OK", b"", b"Some Reason"]))
    headers = draw(st.lists(st.tuples(_names, _values), max_size=4))
    body = draw(st.binary(max_size=40))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    if draw(st.booleans()):
        headers.append((b"Connection", b"close"))
    out = b""
    for _ in range(draw(st.integers(0, 2))):
        out += b"HTTP/1.1 %s\r\nx-hint: 1\r\n\r\n" % draw(st.sampled_from([b"100 Continue",
                                                                            b"103 Early Hints"]))
    if status in (204, 304):
        body, framing = b"", "length"
    if framing == "length":
        headers.append((b"Content-Length", b"%d" % len(body)))
        payload = body
    elif framing == "chunked" and version == b"1.1":
        headers.append((b"Transfer-Encoding", b"chunked"))
        payload, rest = b"", body
        while rest:
            n = draw(st.integers(1, len(rest)))
            ext = draw(st.sampled_from([b"", b";a=b"]))
            payload += b"%x%s\r\n%s\r\n" % (n, ext, rest[:n])
            rest = rest[n:]
        payload += b"0\r\n" + draw(st.sampled_from([b"", b"x-trailer: t\r\n"])) + b"\r\n"
    else:
        payload = body
    sep = draw(st.sampled_from([b"\r\n", b"\n"]))
    head = b"HTTP/%s %d %s" % (version, status, reason) if reason else b"HTTP/%s %d" % (
        version, status)
    lines = [head, *[b"%s: %s" % h for h in headers]]
    return out + sep.join(lines) + sep + sep + payload


@pytest.mark.parametrize("twin", TWINS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=responses())
def test_twins_agree_with_h11_split_at_every_point(twin: str, raw: bytes) -> None:
    expected = _drive(_new("h11"), [raw])
    for cut in range(len(raw) + 1):
        assert _drive(_new(twin), [raw[:cut], raw[cut:]]) == expected, cut
    assert _drive(_new(twin), [raw[i:i + 1] for i in range(len(raw))]) == expected


DESYNC = [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", "both"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", "conflicting"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nabc", "conflicting"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "Transfer-Encoding"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk header"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 21 + b"\r\n",
     "chunk header"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", "footer"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n", "trailer"),
    (b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 0\r\n\r\n", "obs-fold"),
    (b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", "status line"),
    (b"HTTP/1.1 20 OK\r\n\r\n", "status line"),
    (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000, "larger than"),
]


@pytest.mark.parametrize("backend", TWINS)
@pytest.mark.parametrize(("raw", "why"), DESYNC)
def test_desync_bytes_are_protocol_errors(backend: str, raw: bytes, why: str) -> None:
    parser = _new(backend)
    parser.receive_data(raw)
    with pytest.raises(HTTP1ProtocolError, match=why):
        while parser.next_event() is not NEED_DATA:
            pass
    with pytest.raises(HTTP1ProtocolError):  # stays failed
        parser.next_event()


_HEAD_TWINS = twin_params("http1_client", "modelmux.http1._client_py")
_head_bytes = st.sampled_from([b"HTTP/1.1 ", b"HTTP/1.0 ", b"HTTP/1.2 ", b"200", b"20", b" OK",
                               b" ", b"\t", b"\r", b"\n", b"\r\n", b"\x7f", b"\x80", b"\x00",
                               b":", b",", b"Content-Length", b"content-length: 5", b"7",
                               b"Transfer-Encoding", b"chunked", b"Connection: close", b"X-a",
                               b"Keep-Alive"])


def _parsed(module: str, raw: bytes) -> object:
    """What ``parse_response_head`` makes of the head ``raw`` ends with: a result or the error."""
    end = raw.rfind(b"\n") + 1
    try:
        return import_twin(module).parse_response_head(raw, end)
    except HTTP1ProtocolError as exc:
        return ("error", str(exc))


@pytest.mark.skipif(_accel.pure_forced(), reason="compares the twins: needs the native one")
@settings(max_examples=400, deadline=None)
@given(middle=st.lists(_head_bytes, max_size=14), valid=st.booleans(),
       end=st.sampled_from([b"\r\n\r\n", b"\n\n", b"\n\r\n"]))
def test_both_head_parsers_agree_on_hostile_heads(middle: list[bytes], valid: bool,
                                                  end: bytes) -> None:
    """The native response-head scanner and the pure twin's regular expressions return the
    same head, or fail with the same message, for any bytes up to a blank line."""
    start = b"HTTP/1.1 200 OK\r\n" if valid else b""
    raw = start + b"".join(middle) + end
    results = {module.values[0]: _parsed(module.values[0], raw)  # type: ignore[attr-defined]
               for module in _HEAD_TWINS}
    assert len(set(map(repr, results.values()))) == 1, results


_token_bytes = st.sampled_from([b"close", b"Close", b"CLOSE", b"cLoSe", b"keep-alive", b"closed",
                                b"xclose", b"clos", b"e", b"upgrade", b",", b" ", b"\t", b"\x80"])
_length_bytes = st.sampled_from([b"0", b"00", b"5", b"1534", b"9223372036854775807",
                                 b"9223372036854775808", b"99999999999999999999",
                                 b"999999999999999999999", b"7, 7", b"7, 8", b""])


@pytest.mark.skipif(_accel.pure_forced(), reason="compares the twins: needs the native one")
@settings(max_examples=400, deadline=None)
@given(tokens=st.lists(st.lists(_token_bytes, max_size=6), max_size=3),
       length=st.none() | _length_bytes, status=st.sampled_from([b"100", b"200", b"204", b"304"]),
       version=st.sampled_from([b"1.0", b"1.1"]), chunked=st.booleans())
def test_both_head_parsers_agree_on_connection_tokens_and_lengths(
        tokens: list[list[bytes]], length: bytes | None, status: bytes, version: bytes,
        chunked: bool) -> None:
    """Well-formed heads with any Connection values (case, blanks, commas, near misses of
    "close") and Content-Length values up to and past 2**63: the same keep-alive, framing and
    length from both twins, or the same error."""
    lines = [b"HTTP/%s %s OK" % (version, status), b"Server: up"]
    lines += [b"Connection: " + b"".join(value) for value in tokens]
    if length is not None:
        lines.append(b"Content-Length: " + length)
    if chunked:
        lines.append(b"Transfer-Encoding: chunked")
    raw = b"\r\n".join(lines) + b"\r\n\r\n"
    results = {module.values[0]: _parsed(module.values[0], raw)  # type: ignore[attr-defined]
               for module in _HEAD_TWINS}
    assert len(set(map(repr, results.values()))) == 1, results


@pytest.mark.parametrize("backend", TWINS)
@pytest.mark.parametrize(("value", "keep"), [(b"keep-alive", True), (b"Keep-Alive, CLOSE", False),
                                             (b" \tclose\t ", False), (b"closed", True),
                                             (b"upgrade,,close", False), (b"clo se", True)])
def test_connection_close_among_tokens_ends_keep_alive(backend: str, value: bytes,
                                                       keep: bool) -> None:
    parser = _new(backend)
    parser.receive_data(b"HTTP/1.1 200 OK\r\nConnection: %s\r\nContent-Length: 1\r\n\r\nx" % value)
    assert parser.next_event() == (200, [(b"connection", value.strip(b" \t")),
                                         (b"content-length", b"1")], b"OK")
    assert [parser.next_event(), parser.next_event()] == [b"x", END]
    assert (parser.keep_alive, parser.reusable()) == (keep, keep)


@pytest.mark.parametrize("backend", TWINS)
def test_keep_alive_cycle_and_local_errors(backend: str) -> None:
    parser = _new(backend)
    with pytest.raises(HTTP1LocalError):
        parser.send_request(*REQUEST)  # one request at a time
    parser.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx")
    assert parser.next_event() == (200, [(b"content-length", b"1")], b"OK")
    assert [parser.next_event(), parser.next_event()] == [b"x", END]
    assert parser.reusable()
    parser.start_next_cycle()
    for bad in ([(b"x", b"a\r\nb")], [(b"content-length", b"5")]):
        with pytest.raises(HTTP1LocalError):
            parser.send_request(b"POST", b"/", bad, b"{}")
    assert parser.send_request(b"GET", b"/m", [(b"host", b"h")], b"") == (
        b"GET /m HTTP/1.1\r\nhost: h\r\n\r\n")
    parser.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nextra")
    assert parser.next_event()[0] == 200 and parser.next_event() is END
    assert not parser.reusable()  # bytes after the response: the peer is out of step


async def _raw_server(payload: bytes) -> tuple[asyncio.Server, str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(payload)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


@pytest.mark.parametrize("http1", ["fast", "h11"])
def test_pool_maps_parser_errors_into_the_upstream_tree(http1: str) -> None:
    async def main() -> None:
        bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"
        server, url = await _raw_server(bad)
        async with server, ConnectionPool(http1=http1) as pool:  # type: ignore[arg-type]
            resp = await pool.request(b"GET", url, [])
            with pytest.raises(UpstreamClosed):
                await resp.read()
        server, url = await _raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
                                        b"Content-Length: 2\r\n\r\nab")
        async with server, ConnectionPool(http1="fast") as pool:
            with pytest.raises(UpstreamProtocolError) as info:
                await pool.request(b"GET", url, [])
            assert info.value.code == "upstream_protocol_error" and pool.stats() == {}

    asyncio.run(main())


@pytest.mark.parametrize("backend", TWINS)
def test_reading_past_the_end_never_spins(backend: str) -> None:
    parser = _new(backend)
    parser.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert parser.next_event()[0] == 200 and parser.next_event() is END
    assert parser.next_event() is NEED_DATA
    parser.receive_data(b"")
    with pytest.raises(HTTP1ProtocolError, match="after the response"):
        parser.next_event()


async def _keepalive_server(payload: bytes) -> tuple[asyncio.Server, str]:
    """Answers every request on a connection with ``payload`` in one write, then holds it open."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("http1", ["fast", "h11"])
def test_chunks_that_arrived_together_are_read_as_one_piece(http1: str) -> None:
    """Four HTTP chunks in one TCP write: one body read, END on the next, and the
    connection pooled and reused cleanly (the gathered END does not leak into it)."""
    async def main() -> None:
        payload = _CHUNKED + b"".join(b"3\r\n%s\r\n" % part for part in (b"abc", b"def",
                                                                        b"ghi", b"jkl"))
        server, url = await _keepalive_server(payload + b"0\r\n\r\n")
        async with server, ConnectionPool(http1=http1) as pool:  # type: ignore[arg-type]
            for _ in range(2):
                resp = await pool.request(b"GET", url, [])
                assert [piece async for piece in resp.iter_bytes()] == [b"abcdefghijkl"]
                assert resp.is_closed
                assert next(iter(pool.stats().values()))["idle"] == 1

    asyncio.run(main())


@pytest.mark.parametrize("http1", ["fast", "h11"])
def test_a_bad_chunk_after_good_ones_fails_the_next_read(http1: str) -> None:
    """The good bytes before a malformed chunk header are delivered; the error comes next."""
    async def main() -> None:
        server, url = await _keepalive_server(_CHUNKED + b"3\r\nabc\r\n2\r\nde\r\nzz\r\n")
        async with server, ConnectionPool(http1=http1) as pool:  # type: ignore[arg-type]
            resp = await pool.request(b"GET", url, [])
            body = resp.iter_bytes()
            assert await anext(body) == b"abcde"
            with pytest.raises(UpstreamProtocolError) as info:
                await anext(body)
            assert info.value.code == "upstream_protocol_error"
            assert resp.is_closed and pool.stats() == {}

    asyncio.run(main())
