"""Micro-benchmarks of the upstream side: the HTTP/1.1 client's request framing and response parse.

Run: ``python -m pytest benchmarks/test_bench_http1_client.py -q``. Compares the fast client's
twins (``py``, ``native``) with h11 (``[server] http1 = "h11"``) on what the proxy does per
upstream request: frame the OpenAI-compatible provider's POST, parse a JSON response with a
Content-Length, or a 100-chunk chunked SSE stream. Record numbers in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from typing import Any

import pytest

from modelmux.bench.wire import chat_body
from modelmux.http1.client import H11Client
from modelmux.http1.common import END, NEED_DATA
from tests.twins import import_twin, twin_params

pytest.importorskip("pytest_benchmark")

BODY = chat_body("mock", 100, False)
HEADERS = [(b"host", b"127.0.0.1:8080"), (b"content-type", b"application/json"),
           (b"accept", b"application/json"), (b"authorization", b"Bearer sk-test-0123456789"),
           (b"user-agent", b"modelmux/2"), (b"content-length", b"%d" % len(BODY))]
JSON = b'{"id":"chatcmpl-1","object":"chat.completion","choices":[]}' * 25
JSON_RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 02 Dec 2026 00:00:00 GMT\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n"
                 b"Connection: keep-alive\r\n\r\n%s" % (len(JSON), JSON))
EVENT = b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"delta":{"content":"x"}}]}\n\n'
STREAM_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n"
                   + b"".join(b"%x\r\n%s\r\n" % (len(EVENT), EVENT) for _ in range(100))
                   + b"0\r\n\r\n")
STREAM_PIECES = [STREAM_RESPONSE[i:i + 1400] for i in range(0, len(STREAM_RESPONSE), 1400)]


@pytest.fixture(params=[*twin_params("http1_client", "modelmux.http1._client_py"),
                        pytest.param("h11", id="h11")])
def backend(request: pytest.FixtureRequest) -> Any:
    return H11Client if request.param == "h11" else import_twin(request.param).ClientConnection


def _cycle(backend: Any, pieces: list[bytes]) -> int:
    """One request framed, the response fed in ``pieces`` and parsed to its end: body bytes."""
    parser = backend(65536)
    parser.send_request(b"POST", b"/v1/chat/completions", HEADERS, BODY)
    size = 0
    for piece in pieces:
        parser.receive_data(piece)
        while (event := parser.next_event()) is not NEED_DATA:
            if event is END:
                assert parser.reusable()
                return size
            if type(event) is bytes:
                size += len(event)
    raise AssertionError("response did not end")


def test_json_response_cycle(benchmark: Any, backend: Any) -> None:
    """A new parser, the provider's POST framed, a 1.5 KB Content-Length response parsed."""
    assert benchmark(_cycle, backend, [JSON_RESPONSE]) == len(JSON)


def test_chunked_stream_cycle(benchmark: Any, backend: Any) -> None:
    """The same request, then a 100-chunk chunked SSE response arriving in 1,400-byte reads."""
    assert benchmark(_cycle, backend, STREAM_PIECES) == 100 * len(EVENT)
