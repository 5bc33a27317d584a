"""pytest-benchmark: Bedrock's per-chunk stream path and its per-request signing.

Run: ``python -m pytest benchmarks/test_bench_converse.py``. Per chunk: one ``contentBlockDelta``
text frame through the event stream decoder alone, and through the whole ``ConverseRelay``
(decode, translate, frame as SSE), each with the pure and the native twins (``[py]``,
``[native]``), beside Cohere's SSE ``EventRelay`` on the same text. Per
request: the SigV4 signer on a 1 KiB body, beside botocore's ``SigV4Auth`` (the reference);
and a whole non-streamed call's CPU (request translation, signing, answer translation) beside
Cohere's (no signature).
"""

from __future__ import annotations

import importlib
import json

import msgspec
import pytest

from modelmux.auth.sigv4 import AwsCredentials, SigV4Signer
from modelmux.providers.bedrock import ConverseRelay
from modelmux.providers.event_relay import EventRelay
from modelmux.schemas.openai_chat import request_decoder
from modelmux.translate.chat_to_cohere import chat_to_cohere
from modelmux.translate.chat_to_converse import chat_to_converse
from modelmux.translate.cohere_stream import CohereStreamTranslator
from modelmux.translate.cohere_to_chat import cohere_to_chat
from modelmux.translate.converse_to_chat import converse_to_chat
from tests.fakes.answers import TOOLS
from tests.fakes.bedrock import event, response_body
from tests.fakes.cohere import response_json as cohere_response
from tests.twins import import_twin

pytest.importorskip("pytest_benchmark")
_encode = msgspec.json.Encoder().encode

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


TWINS = {"py": ("modelmux.codec._eventstream_py", "modelmux.translate._converse_stream_py"),
         "native": ("modelmux._speedups.eventstream", "modelmux._speedups.converse_stream")}
"""The decoder and translator modules of each twin."""


def _twin(name: str) -> tuple[type, type]:
    decoder, translator = TWINS[name]
    if name == "py":
        return (importlib.import_module(decoder).EventStreamDecoder,
                importlib.import_module(translator).ConverseStreamTranslator)
    return (import_twin(decoder).EventStreamDecoder,
            import_twin(translator).ConverseStreamTranslator)


def _converse(twin: str) -> ConverseRelay:
    decoder, translator = _twin(twin)
    relay = ConverseRelay(translator(model="m", completion_id="chatcmpl-b", created=1,
                                     include_usage=True), decoder())
    relay.feed(event("messageStart", {"role": "assistant"}))
    relay.feed(FRAME)  # the first text delta builds the chunk splice
    return relay


@pytest.mark.parametrize("twin", list(TWINS))
def test_eventstream_decode_per_chunk(benchmark, twin: str) -> None:  # type: ignore[no-untyped-def]
    decoder = _twin(twin)[0]()
    assert len(benchmark(decoder.feed, FRAME)) == 1


@pytest.mark.parametrize("twin", list(TWINS))
def test_converse_relay_per_chunk(benchmark, twin: str) -> None:  # type: ignore[no-untyped-def]
    relay = _converse(twin)
    assert len(benchmark(relay.feed, FRAME)) == 1


def test_cohere_relay_per_chunk(benchmark) -> None:  # type: ignore[no-untyped-def]
    relay = EventRelay(CohereStreamTranslator(model="m", completion_id="chatcmpl-b", created=1,
                                              include_usage=True))
    relay.feed(b'data: {"type":"message-start","id":"r","delta":{"message":{}}}\n\n')
    relay.feed(COHERE)  # the role chunk goes out with the first delta
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


CHAT = request_decoder.decode(json.dumps({
    "model": "m", "max_tokens": 200, "temperature": 0.2,
    "messages": [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": "x" * 900}],
    "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]}))
CONVERSE_ANSWER = response_body(TOOLS)
COHERE_ANSWER = json.dumps(cohere_response(TOOLS)).encode()


def test_bedrock_request_and_answer_per_call(benchmark) -> None:  # type: ignore[no-untyped-def]
    """Translate the request, sign it, translate a tool-call answer: Bedrock's CPU per call."""
    signer = SigV4Signer("us-east-1", "bedrock")

    def call() -> bytes:
        body = _encode(chat_to_converse(CHAT, provider="p"))
        signer.sign("POST", URL, HEADERS, body, CREDS, 1_765_000_000.0)
        return _encode(converse_to_chat(CONVERSE_ANSWER, model="m", completion_id="c",
                                        created=1))

    assert b"tool_calls" in benchmark(call)


def test_cohere_request_and_answer_per_call(benchmark) -> None:  # type: ignore[no-untyped-def]
    """The same for Cohere (a static key, no signature), for comparison."""

    def call() -> bytes:
        _encode(chat_to_cohere(CHAT, model="m", provider="p"))
        return _encode(cohere_to_chat(COHERE_ANSWER, model="m", completion_id="c", created=1))

    assert b"tool_calls" in benchmark(call)
