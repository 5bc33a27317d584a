"""pytest-benchmark: Bedrock's per-chunk stream path and its per-request signing.

Run: ``python -m pytest benchmarks/test_bench_converse.py``. Per chunk: one ``contentBlockDelta``
text frame through the event stream decoder alone, and through the whole ``ConverseRelay``
(decode, translate, frame as SSE), beside Cohere's SSE ``EventRelay`` on the same text. Per
request: the SigV4 signer on a 1 KiB body, beside botocore's ``SigV4Auth`` (the reference).
"""

from __future__ import annotations

import json

import pytest

from modelmux.auth.sigv4 import AwsCredentials, SigV4Signer
from modelmux.codec.eventstream import EventStreamDecoder
from modelmux.providers.bedrock import ConverseRelay
from modelmux.providers.event_relay import EventRelay
from modelmux.translate.cohere_stream import CohereStreamTranslator
from modelmux.translate.converse_stream import ConverseStreamTranslator
from tests.fakes.bedrock import event

pytest.importorskip("pytest_benchmark")

TEXT = " word7, and"
FRAME = event("contentBlockDelta", {"delta": {"text": TEXT}, "contentBlockIndex": 0})
COHERE = ("event: content-delta\ndata: " + json.dumps(
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": TEXT}}}})
    + "\n\n").encode()
URL = ("https://bedrock-runtime.us-east-1.amazonaws.com/model/"
       "anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse")
BODY = json.dumps({"messages": [{"role": "user", "content": [{"text": "x" * 960}]}]}).encode()
CREDS = AwsCredentials("AKIDEXAMPLE000000001", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                       "session-token")
HEADERS = [(b"content-type", b"application/json"), (b"accept", b"application/json")]


def _converse() -> ConverseRelay:
    relay = ConverseRelay(ConverseStreamTranslator(model="m", completion_id="chatcmpl-b",
                                                   created=1, include_usage=True))
    relay.feed(event("messageStart", {"role": "assistant"}))
    return relay


def test_eventstream_decode_per_chunk(benchmark) -> None:  # type: ignore[no-untyped-def]
    decoder = EventStreamDecoder()
    assert len(benchmark(decoder.feed, FRAME)) == 1


def test_converse_relay_per_chunk(benchmark) -> None:  # type: ignore[no-untyped-def]
    relay = _converse()
    assert len(benchmark(relay.feed, FRAME)) == 1


def test_cohere_relay_per_chunk(benchmark) -> None:  # type: ignore[no-untyped-def]
    relay = EventRelay(CohereStreamTranslator(model="m", completion_id="chatcmpl-b", created=1,
                                              include_usage=True))
    relay.feed(b'data: {"type":"message-start","id":"r","delta":{"message":{}}}\n\n')
    assert len(benchmark(relay.feed, COHERE)) == 1


def test_sigv4_sign_per_request(benchmark) -> None:  # type: ignore[no-untyped-def]
    signer = SigV4Signer("us-east-1", "bedrock")
    out = benchmark(signer.sign, "POST", URL, HEADERS, BODY, CREDS, 1_765_000_000.0)
    assert out[-1][0] == b"authorization"


def test_botocore_sign_per_request(benchmark) -> None:  # type: ignore[no-untyped-def]
    botocore = pytest.importorskip("botocore")
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    del botocore
    auth = SigV4Auth(Credentials(CREDS.access_key_id, CREDS.secret_access_key,
                                 CREDS.session_token), "bedrock", "us-east-1")

    def sign() -> None:
        auth.add_auth(AWSRequest(method="POST", url=URL, data=BODY, headers={
            "content-type": "application/json", "accept": "application/json"}))

    benchmark(sign)
