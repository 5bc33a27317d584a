"""``request_head``: a request's HTTP/2 header fields as the exchange takes them, no sockets."""

from __future__ import annotations

from modelmux.server.h2_stream import request_head


def test_pseudo_headers_become_method_and_target_and_authority_the_host() -> None:
    fields = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/v1/x?\xe9"),
              (b":authority", b"gw:8080"), (b"content-length", b"12"), (b"x-a", b"1")]
    assert request_head(fields) == ("POST", "/v1/x?\xe9", [
        (b"content-length", b"12"), (b"x-a", b"1"), (b"host", b"gw:8080")], 12)


def test_a_host_header_wins_and_a_malformed_length_is_not_declared() -> None:
    fields = [(":method", "GET"), (":path", "/"), (":authority", "a"), ("host", "b"),
              ("content-length", "-1")]
    method, target, headers, declared = request_head(
        [(name.encode(), value.encode()) for name, value in fields])
    assert (method, target, declared) == ("GET", "/", None)
    assert headers == [(b"host", b"b"), (b"content-length", b"-1")]
