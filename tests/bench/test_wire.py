"""``modelmux.bench.wire`` on fixed bytes: framing, SSE counting, and every split position."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelmux.bench.wire import (
    ResponseParser,
    Target,
    WireError,
    chat_body,
    encode_request,
    parse_url,
)

JSON_BODY = b'{"id":"chatcmpl-1","choices":[{"message":{"content":"hi"}}]}'
LENGTH = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
          + str(len(JSON_BODY)).encode() + b"\r\nserver: modelmux\r\n\r\n" + JSON_BODY)


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}".encode() + b"\r\n" + data + b"\r\n"


EVENTS = [b'data: {"choices":[{"delta":{"content":"%d"}}]}\n\n' % i for i in range(4)]
SSE_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
SSE = SSE_HEAD + b"".join(_chunk(e) for e in [*EVENTS, b"data: [DONE]\n\n"]) + b"0\r\n\r\n"


def pieces(data: bytes) -> Iterator[list[bytes]]:
    """The whole, one byte at a time, and split in two at every position."""
    yield [data]
    yield [data[i:i + 1] for i in range(len(data))]
    for cut in range(1, len(data)):
        yield [data[:cut], data[cut:]]


def parse(parts: list[bytes]) -> tuple[ResponseParser, int]:
    parser = ResponseParser()
    events = sum(parser.feed(part) for part in parts)
    return parser, events


def test_content_length_at_every_split() -> None:
    for parts in pieces(LENGTH):
        parser, events = parse(parts)
        assert parser.complete and parser.keep_alive
        assert (parser.status, parser.body_bytes, events, parser.sse) == (200, len(JSON_BODY), 0, False)


def test_chunked_sse_counts_events_and_done_at_every_split() -> None:
    for parts in pieces(SSE):
        parser, events = parse(parts)
        assert parser.complete and parser.done and parser.keep_alive
        assert events == parser.events == 5


def test_sse_events_split_across_chunks_and_crlf_lines() -> None:
    stream = (b'event: message_start\r\ndata: {"a":1}\r\n\r\n: keep-alive\r\n\r\n'
              b'data: {"b":2}\r\n\r\ndata:[DONE]\r\n\r\n')
    framed = SSE_HEAD + b"".join(_chunk(stream[i:i + 7]) for i in range(0, len(stream), 7)) \
        + b"0\r\nx-trailer: 1\r\n\r\n"
    for parts in pieces(framed):
        parser, events = parse(parts)
        assert parser.complete and parser.done and events == 3


def test_stream_without_done_and_done_inside_content() -> None:
    body = b'data: {"content":"[DONE]"}\n\n'
    parser, events = parse([SSE_HEAD + _chunk(body) + b"0\r\n\r\n"])
    assert parser.complete and not parser.done and events == 1


def test_connection_close_and_http10() -> None:
    parser, _ = parse([LENGTH.replace(b"server: modelmux", b"Connection: close")])
    assert parser.complete and not parser.keep_alive
    parser, _ = parse([LENGTH.replace(b"HTTP/1.1", b"HTTP/1.0")])
    assert parser.complete and not parser.keep_alive
    parser, _ = parse([LENGTH.replace(b"HTTP/1.1", b"HTTP/1.0").replace(
        b"server: modelmux", b"connection: keep-alive")])
    assert parser.keep_alive


def test_read_until_close_completes_on_eof() -> None:
    for parts in pieces(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"
                        b"data: 1\n\ndata: [DONE]\n\n"):
        parser, events = parse(parts)
        assert not parser.complete
        parser.eof()
        assert parser.complete and parser.done and events == 2 and not parser.keep_alive


def test_interim_and_bodiless_responses() -> None:
    parser, _ = parse([b"HTTP/1.1 100 Continue\r\n\r\n" + LENGTH])
    assert parser.complete and parser.status == 200
    parser, _ = parse([b"HTTP/1.1 204 No Content\r\n\r\n"])
    assert parser.complete and parser.status == 204
    parser, _ = parse([b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n"])
    assert parser.complete and parser.status == 503


@pytest.mark.parametrize("data", [
    b"HTTP/2 200\r\n\r\n",
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"HTTP/1.1 abc OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n",
    SSE_HEAD + b"zz\r\n",
    SSE_HEAD + b"3\r\nabcd\r\n",
    LENGTH + b"extra",
    b"HTTP/1.1 200 OK\r\n" + b"x" * 70000,
])
def test_malformed_responses_raise(data: bytes) -> None:
    with pytest.raises(WireError):
        ResponseParser().feed(data)


def test_eof_mid_response_raises() -> None:
    for cut in (5, len(LENGTH) - 1):
        parser = ResponseParser()
        parser.feed(LENGTH[:cut])
        with pytest.raises(WireError):
            parser.eof()


def test_request_bytes() -> None:
    target = parse_url("http://127.0.0.1:3000")
    body = chat_body("mock", 10, stream=True)
    assert body == (b'{"model":"mock","messages":[{"role":"user","content":"The quick "}],'
                    b'"stream":true}')
    assert encode_request(target, body, [("authorization", "Bearer k")], stream=True) == (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:3000\r\n"
        b"Content-Type: application/json\r\nAccept: text/event-stream\r\n"
        b"User-Agent: modelmux-bench\r\nContent-Length: %d\r\nauthorization: Bearer k\r\n\r\n"
        % len(body) + body)
    for size in (0, 1, 45, 1000):
        assert len(chat_body("m", size, False)) == len(chat_body("m", 0, False)) + size


@pytest.mark.parametrize(("url", "expected"), [
    ("http://127.0.0.1:3000", Target("http", "127.0.0.1", 3000, "/v1/chat/completions")),
    ("http://h:8000/v1/", Target("http", "h", 8000, "/v1/chat/completions")),
    ("https://api.example/v1/chat/completions", Target("https", "api.example", 443,
                                                       "/v1/chat/completions")),
    ("http://[::1]:9/openai?x=1", Target("http", "::1", 9, "/openai/chat/completions?x=1")),
])
def test_parse_url(url: str, expected: Target) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize("url", ["ftp://h/", "127.0.0.1:3000", "http:///v1"])
def test_parse_url_rejects(url: str) -> None:
    with pytest.raises(ValueError):
        parse_url(url)
