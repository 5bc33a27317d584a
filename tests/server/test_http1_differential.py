"""Differential tests: the fast HTTP/1.1 twins against each other and against h11.

Generated requests (heads built from valid and hostile pieces, Content-Length and chunked bodies,
pipelined leftovers) are fed whole and in random cuts. The py and native twins must agree
exactly; against h11 the fast path must accept only what h11 accepts, with the same events, and
may reject more only on the documented smuggling vectors (obs-fold, Content-Length with
Transfer-Encoding, versions other than 1.0/1.1).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelmux.http1.server_h11 import H11Connection
from tests.server.http1_diff import check, trace, twins

_NAMES = st.sampled_from([b"Host", b"host", b"Content-Length", b"Transfer-Encoding",
                          b"Connection", b"Expect", b"X-A", b"x_b", b"Accept", b"Host ", b"",
                          b"X\x00", b"a:b", b"User-Agent"])
_VALUES = st.one_of(
    st.sampled_from([b"", b" x ", b"chunked", b"Chunked", b"gzip", b"3", b"03", b"3, 3", b"3,4",
                     b"-1", b"close", b"keep-alive, close", b"100-continue", b"a\tb", b"a\rb",
                     b"\x00", b"\x7f\x80\xff", b"\x0b", b"9" * 21]),
    st.binary(max_size=12),
)
_SANE = st.sampled_from([b"Accept: */*", b"Connection: close", b"Connection: keep-alive",
                         b"Expect: 100-continue", b"X-Long: a b\tc ", b"Content-Length: 3",
                         b"Transfer-Encoding: chunked", b"User-Agent: \x80\xff", b"Host: again"])
_EOL = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r"])
_LINE = st.one_of(
    st.builds(lambda m, t, v: m + b" " + t + b" " + v,
              st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"G@T", b""]),
              st.sampled_from([b"/", b"/v1/chat/completions?x=1", b"*", b"/a b", b"/\x80", b""]),
              st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.11", b"http/1.1"])),
    st.binary(max_size=20),
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """Mostly plausible requests with one or two hostile pieces, so both paths get exercised."""
    sane = draw(st.integers(0, 9)) > 1
    line = b"POST /v1/chat/completions HTTP/1.1" if sane else draw(_LINE)
    eol = b"\r\n" if sane and draw(st.integers(0, 3)) else draw(_EOL)
    parts = [line, eol]
    if draw(st.integers(0, 5)):
        parts += [b"Host: 127.0.0.1", eol]
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 15))
        if kind == 0:
            parts.append(draw(st.sampled_from([b" folded", b"\tfolded", b"junk"])))
        elif kind < 10:
            parts.append(draw(_SANE))
        else:
            parts += [draw(_NAMES), b":", draw(st.sampled_from([b"", b" ", b"\t "])), draw(_VALUES)]
        parts.append(eol if draw(st.integers(0, 5)) else draw(_EOL))
    body = draw(st.binary(max_size=30))
    chunked = draw(st.booleans())
    framing = draw(st.integers(0, 3))
    if framing:  # the framing header that matches the body, usually
        parts += [b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % len(body), eol]
    parts.append(eol)
    if chunked:  # a chunked body, sometimes damaged
        sizes = draw(st.lists(st.integers(0, len(body)), max_size=3))
        framed, at = [], 0
        for size in sizes:
            framed.append(b"%x%s\r\n%s%s" % (size, draw(st.sampled_from([b"", b";e=1", b" ", b"g"])),
                                             body[at:at + size],
                                             draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))))
            at += size
        framed.append(b"0\r\n" + draw(st.sampled_from([b"", b"T: 1\r\n", b"bad\r\n"])) + b"\r\n")
        body = b"".join(framed)
    tail = draw(st.sampled_from([b"", b"GET / HTTP/1.1\r\n"]))
    return b"".join(parts) + body + tail


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.lists(st.integers(0, 1 << 16), max_size=6))
def test_fast_twins_agree_with_each_other_and_with_h11(data: bytes, points: list[int]) -> None:
    check(data, points)


def test_byte_at_a_time_matches_whole_on_a_realistic_request() -> None:
    data = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n")
    for cls in [*twins(), H11Connection]:
        assert trace(cls, [data[i:i + 1] for i in range(len(data))]) == trace(cls, [data])


_TOKEN_PIECES = st.sampled_from([b"close", b"Close", b"CLOSE", b"keep-alive", b"closed", b"xclose",
                                 b"100-continue", b"100-Continue", b"100-continued", b"e",
                                 b",", b" ", b"\t", b"\x80"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(connection=st.lists(st.lists(_TOKEN_PIECES, max_size=6), max_size=2),
       expect=st.lists(st.lists(_TOKEN_PIECES, max_size=6), max_size=2))
def test_twins_agree_on_connection_and_expect_tokens(connection: list[list[bytes]],
                                                     expect: list[list[bytes]]) -> None:
    """Connection and Expect values made of near misses, case and blanks: both twins find
    "close" and "100-continue" among the tokens alike (keep-alive, expect_continue)."""
    lines = [b"POST /v1/x HTTP/1.1", b"Host: up", b"Content-Length: 0"]
    lines += [b"Connection: " + b"".join(v) for v in connection]
    lines += [b"Expect: " + b"".join(v) for v in expect]
    data = b"\r\n".join(lines) + b"\r\n\r\n"
    results = [trace(cls, [data]) for cls in twins()]
    assert all(r == results[0] for r in results), results
