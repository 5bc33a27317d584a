"""Micro-benchmarks of the front door's per-request CPU: HTTP/1.1 head parse and request decode.

Run: ``python -m pytest benchmarks/test_bench_http1.py -q``. The HTTP/1.1 numbers compare the
fast backend's twins (``py``, ``native``) with h11 (the reference backend) on the head the
OpenAI Python SDK sends; the decode numbers are what ``api/chat.py`` does with the body.
Record numbers, with the machine and the command, in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from typing import Any

import pytest

from modelmux.api.chat import decode_request
from modelmux.bench.wire import chat_body
from modelmux.http1.common import END, NEED_DATA, RequestHead
from modelmux.http1.server_h11 import H11Connection
from modelmux.providers.openai_compatible import upstream_body
from tests.twins import import_twin, twin_params

pytest.importorskip("pytest_benchmark")

BODY = chat_body("gpt-4o-mini", 100, False)
HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\n"
    b"Host: 127.0.0.1:3000\r\n"
    b"Accept-Encoding: gzip, deflate\r\n"
    b"Connection: keep-alive\r\n"
    b"Accept: application/json\r\n"
    b"Content-Type: application/json\r\n"
    b"User-Agent: OpenAI/Python 1.54.4\r\n"
    b"X-Stainless-Lang: python\r\n"
    b"X-Stainless-Package-Version: 1.54.4\r\n"
    b"X-Stainless-OS: Linux\r\n"
    b"X-Stainless-Arch: x64\r\n"
    b"X-Stainless-Runtime: CPython\r\n"
    b"X-Stainless-Runtime-Version: 3.11.7\r\n"
    b"Authorization: Bearer sk-test-0123456789abcdef\r\n"
    b"X-Stainless-Async: false\r\n"
    b"X-Stainless-Retry-Count: 0\r\n"
    b"Content-Length: %d\r\n\r\n" % len(BODY)
)
REQUEST = HEAD + BODY
RESPONSE = b'{"id":"chatcmpl-1","object":"chat.completion","choices":[]}' * 5
RESPONSE_HEADERS = [(b"content-type", b"application/json"), (b"x-modelmux-overhead-ms", b"0.12"),
                    (b"content-length", b"%d" % len(RESPONSE)), (b"server", b"modelmux"),
                    (b"date", b"Wed, 02 Dec 2026 00:00:00 GMT")]


@pytest.fixture(params=[*twin_params("http1", "modelmux.http1._server_py"),
                        pytest.param("h11", id="h11")])
def backend(request: pytest.FixtureRequest) -> Any:
    return H11Connection if request.param == "h11" else import_twin(request.param).ServerConnection


def test_parse_request_head(benchmark: Any, backend: Any) -> None:
    """A new connection object and one SDK-shaped head (no body framing, no response)."""
    def run() -> object:
        conn = backend(65536)
        conn.receive_data(HEAD)
        return conn.next_event()

    head = benchmark(run)
    assert isinstance(head, RequestHead) and len(head.headers) == 16


def test_request_response_cycle(benchmark: Any, backend: Any) -> None:
    """One keep-alive cycle: head and body in, JSON response head and body out, next cycle."""
    conn = backend(65536)

    def run() -> bytes:
        conn.receive_data(REQUEST)
        while (event := conn.next_event()) is not NEED_DATA:
            if event is END:
                break
        out = conn.send_response(200, list(RESPONSE_HEADERS), end=True, body=RESPONSE)
        conn.start_next_cycle()
        return out

    assert benchmark(run).endswith(RESPONSE)


def test_streamed_response_framing(benchmark: Any, backend: Any) -> None:
    """A chunked SSE response: head, 100 chunks of an OpenAI delta, end (per stream)."""
    chunk = b'data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":"lorem "}}]}\n\n'
    conn = backend(65536)

    def run() -> int:
        conn.receive_data(HEAD + BODY)
        while conn.next_event() is not END:
            pass
        size = len(conn.send_response(200, [(b"content-type", b"text/event-stream")], end=False))
        for _ in range(100):
            size += len(conn.send_data(chunk))
        size += len(conn.send_end())
        conn.start_next_cycle()
        return size

    assert benchmark(run) > 100 * len(chunk)


def test_decode_chat_request(benchmark: Any) -> None:
    """``api/chat.py``'s decode of the body into the typed request (msgspec, validated)."""
    request = benchmark(decode_request, BODY)
    assert request.model == "gpt-4o-mini"


def test_upstream_body_with_a_new_model(benchmark: Any) -> None:
    """The OpenAI-compatible provider's body when the model name changes (else it is ``BODY``)."""
    out = benchmark(upstream_body, BODY, sent_model="gpt-4o-mini", sent_stream=False,
                    model="mock", stream=False)
    assert b'"mock"' in out
