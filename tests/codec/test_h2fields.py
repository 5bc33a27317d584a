"""The one RFC 9113 section 8.2.2 filter both HTTP/2 sides use for outgoing fields."""

from __future__ import annotations

import pytest

from modelmux.codec.h2fields import h2_fields

HEADERS = [(b"Content-Type", b"application/json"), (b"Connection", b"keep-alive"),
           (b"Keep-Alive", b"timeout=5"), (b"Proxy-Connection", b"close"),
           (b"Transfer-Encoding", b"chunked"), (b"Upgrade", b"h2c"), (b"Host", b"example.test"),
           (b"X-Custom", b"v")]


@pytest.mark.parametrize("request_side", [True, False], ids=["request", "response"])
def test_connection_specific_fields_are_dropped_and_names_lower_cased(request_side: bool) -> None:
    assert h2_fields(HEADERS, request=request_side) == [
        (b"content-type", b"application/json"), (b"x-custom", b"v")]


@pytest.mark.parametrize(("te", "request_side", "kept"), [
    (b"trailers", True, True), (b" Trailers ", True, True), (b"gzip", True, False),
    (b"trailers", False, False)])
def test_te_only_as_trailers_and_only_in_a_request(te: bytes, request_side: bool,
                                                   kept: bool) -> None:
    out = h2_fields([(b"TE", te)], request=request_side)
    assert out == ([(b"te", te)] if kept else [])
