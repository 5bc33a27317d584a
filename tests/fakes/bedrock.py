"""A fake Bedrock runtime: Converse and ConverseStream, SigV4-checked, on loopback.

Wire format per the Amazon Bedrock API Reference: ``POST /model/{modelId}/converse`` answers a
``ConverseResponse`` (``output.message.content`` text and ``toolUse`` blocks, ``stopReason``,
``usage``, ``metrics``); ``/converse-stream`` answers ``application/vnd.amazon.eventstream``
messages (messageStart, contentBlockStart/Delta/Stop, messageStop, metadata, each payload with
the ``p`` padding field Bedrock adds). Claude models also answer InvokeModel (``/invoke``: the
Anthropic Message), ``/invoke-with-response-stream`` (``chunk`` events, each ``{"bytes":
base64 of one Anthropic stream event, "p": padding}``) and ``/count-tokens``
(``{"inputTokens": N}``); their body must carry ``anthropic_version: bedrock-2023-05-31`` and neither ``model`` nor
``stream``. Errors carry ``x-amzn-ErrorType`` and ``{"message"}``.
Every request's signature is recomputed from the known keys and refused when it differs.
``faults`` holds one fault name per coming request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import deque
from typing import Any
from urllib.parse import unquote

from modelmux.auth.sigv4 import canonical_request, credential_scope, signing_key, string_to_sign
from modelmux.codec.eventstream import encode_message
from tests.fakes.answers import TEXT, Answer, pieces
from tests.fakes.claude import COUNTED_TOKENS, message_events, message_json
from tests.fakes.http import FakeServer, Reply, Request, Split, json_reply, whole

ERRORS = {
    "400": (400, "ValidationException", "The provided model identifier is invalid."),
    "403": (403, "AccessDeniedException", "You don't have access to the model."),
    "404": (404, "ResourceNotFoundException", "Model not found."),
    "429": (429, "ThrottlingException", "Too many requests, please wait."),
    "not_ready": (429, "ModelNotReadyException", "Model is not ready."),
    "500": (500, "InternalServerException", "Internal failure."),
    "503": (503, "ServiceUnavailableException", "Service is unavailable."),
    "expired": (403, "ExpiredTokenException", ("The security token included in the request "
                                               "is expired")),
}
STREAM_FAULTS = {"exception_first", "exception_mid", "bad_crc", "no_end", "reset",
                 "reset_early"}
INVOKE_OPS = ("invoke", "invoke-with-response-stream", "count-tokens")
ARGS = "@@args{}@@"


def error_reply(status: int, name: str, message: str) -> Reply:
    return json_reply(status, {"message": message},
                      [("x-amzn-errortype", (f"{name}:http://internal.amazon.com/coral/"
                                            "com.amazon.bedrock/"))])


def usage(answer: Answer) -> dict[str, int]:
    return {"inputTokens": answer.prompt_tokens, "outputTokens": answer.completion_tokens,
            "totalTokens": answer.prompt_tokens + answer.completion_tokens}


def response_body(answer: Answer) -> bytes:
    """The Converse answer; tool inputs are spliced in as the exact JSON text."""
    content: list[dict[str, Any]] = [{"text": answer.text}] if answer.text else []
    content += [{"toolUse": {"toolUseId": c.id, "name": c.name, "input": ARGS.format(i)}}
                for i, c in enumerate(answer.tool_calls)]
    doc = {"output": {"message": {"role": "assistant", "content": content}},
           "stopReason": answer.stop_reason, "usage": usage(answer),
           "metrics": {"latencyMs": 321}}
    text = json.dumps(doc, ensure_ascii=False)
    for i, call in enumerate(answer.tool_calls):
        text = text.replace(json.dumps(ARGS.format(i)), call.arguments)
    return text.encode()


def event(kind: str, doc: dict[str, Any]) -> bytes:
    payload = json.dumps({**doc, "p": "abcdefghij"[:len(kind) % 10]}, ensure_ascii=False)
    return encode_message({":event-type": kind, ":content-type": "application/json",
                           ":message-type": "event"}, payload.encode())


def exception(kind: str, message: str) -> bytes:
    return encode_message({":exception-type": kind, ":content-type": "application/json",
                           ":message-type": "exception"}, json.dumps({"message": message}).encode())


def stream_events(answer: Answer) -> list[bytes]:
    events = [event("messageStart", {"role": "assistant"})]
    if answer.text:
        events += [event("contentBlockDelta", {"delta": {"text": p}, "contentBlockIndex": 0})
                   for p in pieces(answer.text)]
        events.append(event("contentBlockStop", {"contentBlockIndex": 0}))
    for i, call in enumerate(answer.tool_calls, start=1 if answer.text else 0):
        events.append(event("contentBlockStart", {"start": {"toolUse": {
            "toolUseId": call.id, "name": call.name}}, "contentBlockIndex": i}))
        events += [event("contentBlockDelta", {"delta": {"toolUse": {"input": p}},
                                               "contentBlockIndex": i})
                   for p in pieces(call.arguments)]
        events.append(event("contentBlockStop", {"contentBlockIndex": i}))
    events.append(event("messageStop", {"stopReason": answer.stop_reason}))
    events.append(event("metadata", {"usage": usage(answer), "metrics": {"latencyMs": 321}}))
    return events


def chunk(doc: dict[str, Any]) -> bytes:
    """One InvokeModelWithResponseStream ``chunk`` event carrying ``doc`` as base64 JSON."""
    data = base64.b64encode(json.dumps(doc, ensure_ascii=False).encode()).decode()
    return encode_message({":event-type": "chunk", ":content-type": "application/json",
                           ":message-type": "event"},
                          json.dumps({"bytes": data}, separators=(",", ":")).encode())


def padded_chunk(doc: dict[str, Any], pad: str = "abcdefghijklmnopq") -> bytes:
    """A ``chunk`` event spelled as Bedrock's own answers read: the event's JSON compact, the
    ``PayloadPart`` with its ``p`` padding after ``bytes``."""
    data = base64.b64encode(json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
                            .encode()).decode()
    return encode_message({":event-type": "chunk", ":content-type": "application/json",
                           ":message-type": "event"},
                          json.dumps({"bytes": data, "p": pad}, separators=(",", ":")).encode())


def claude_docs(answer: Answer, model: str) -> list[dict[str, Any]]:
    """The Anthropic stream events for ``answer``, as Bedrock sends them (``message_stop``
    with its ``amazon-bedrock-invocationMetrics``)."""
    docs = [json.loads(frame.split(b"data: ", 1)[1]) for frame in message_events(answer, model)]
    docs[-1]["amazon-bedrock-invocationMetrics"] = {
        "inputTokenCount": answer.prompt_tokens, "outputTokenCount": answer.completion_tokens,
        "invocationLatency": 321, "firstByteLatency": 12}
    return docs


def vector_of(text: str, dimensions: int) -> list[float]:
    """A vector that tells its input apart: its length, then halves."""
    return [float(len(text))] + [0.5 * i for i in range(1, dimensions)]


class FakeBedrock(FakeServer):
    def __init__(self, *, access_key: str = "AKIDFAKE000000000001", secret: str = "fake/secret",
                 token: str | None = None, region: str = "us-east-1", answer: Answer = TEXT,
                 split: Split = whole) -> None:
        super().__init__(split=split)
        self.access_key, self.secret, self.token, self.region = access_key, secret, token, region
        self.answer = answer
        self.faults: deque[str] = deque()
        self.bodies: list[dict[str, Any]] = []
        self.models: list[str] = []
        self.claude_profiles: set[str] = set()  # application inference profiles of Claude
        self.authority = ""  # set when served over HTTP/2 (tests.fakes.h2.H2Fake)
        self.claude_docs: list[dict[str, Any]] | None = None  # a scripted Claude stream
        self.raw_bodies: list[bytes] = []

    def claude(self, operation: str, model: str, body: dict[str, Any]) -> Reply:
        """InvokeModel, its stream and CountTokens for a Claude model."""
        if operation == "count-tokens":
            try:
                inner = json.loads(base64.b64decode(body["input"]["invokeModel"]["body"]))
            except (KeyError, TypeError, ValueError):
                return error_reply(400, "ValidationException", "input.invokeModel.body needed")
            body = inner
        extra = [k for k in ("model", "stream") if k in body]
        if extra:
            return error_reply(400, "ValidationException", "Malformed input request: " + "".join(
                f"#: extraneous key [{k}] is not permitted" for k in extra))
        if body.get("anthropic_version") != "bedrock-2023-05-31" or "max_tokens" not in body:
            return error_reply(400, "ValidationException", "anthropic_version and max_tokens "
                               "are required")
        beta = body.get("anthropic_beta", [])
        if not isinstance(beta, list) or not all(isinstance(b, str) for b in beta):
            return error_reply(400, "ValidationException", "anthropic_beta: expected a list")
        fault = self.faults.popleft() if self.faults else None
        if fault in ERRORS:
            return error_reply(*ERRORS[fault])
        if operation == "count-tokens":
            return json_reply(200, {"inputTokens": COUNTED_TOKENS})
        if operation == "invoke":
            return json_reply(200, message_json(self.answer, model))
        docs = self.claude_docs or claude_docs(self.answer, model)
        events = [padded_chunk(doc, "abcdefghijklmnopqrstuvwxyz"[:3 + i % 20])
                  for i, doc in enumerate(docs)]  # Bedrock's spelling, padding of varied size
        if fault == "exception_first":
            events[:] = [exception("throttlingException", "Too many tokens, slow down.")]
        elif fault == "exception_mid":
            events[4:] = [exception("modelStreamErrorException", "The model failed mid-way.")]
        return Reply(200, [("content-type", "application/vnd.amazon.eventstream")],
                     events=events)

    def invoke(self, model: str, body: dict[str, Any]) -> Reply:
        """Titan: one ``inputText``; Cohere: up to 96 ``texts`` with an ``input_type``."""
        fault = self.faults.popleft() if self.faults else None
        if fault in ERRORS:
            return error_reply(*ERRORS[fault])
        if "titan-embed" in model:
            if not isinstance(body.get("inputText"), str) or set(body) - {
                    "inputText", "dimensions", "normalize"}:
                return error_reply(400, "ValidationException", "malformed Titan input")
            vector = vector_of(body["inputText"], body.get("dimensions", 4))
            return json_reply(200, {"embedding": vector, "inputTextTokenCount": len(
                body["inputText"].split()), "embeddingsByType": {"float": vector}})
        texts = body.get("texts")
        if not isinstance(texts, list) or not 0 < len(texts) <= 96 or not body.get("input_type"):
            return error_reply(400, "ValidationException", "texts: 1 to 96, input_type needed")
        tokens = sum(len(t.split()) for t in texts)
        return json_reply(200, {"id": "e1", "response_type": "embeddings_floats",
                                "texts": texts, "embeddings": [vector_of(t, 4) for t in texts]},
                          [("x-amzn-bedrock-input-token-count", str(tokens))])

    def check_signature(self, request: Request) -> str | None:
        """Why the signature is wrong, or None when it is the one the known keys give."""
        auth = request.headers.get("authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 "):
            return "missing SigV4 authorization"
        fields = dict(part.strip().split("=", 1) for part in auth[17:].split(","))
        key, date, region, service, _ = fields["Credential"].split("/")
        if (key, region, service) != (self.access_key, self.region, "bedrock"):
            return f"unexpected credential scope {fields['Credential']}"
        if request.headers.get("x-amz-security-token") != self.token:
            return "wrong security token"
        timestamp = request.headers.get("x-amz-date", "")
        signed = fields["SignedHeaders"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            return "host and x-amz-date must be signed"
        path, _, query = request.path.partition("?")
        values = {**request.headers}
        if "host" not in values and self.authority:  # HTTP/2: the host is :authority
            values["host"] = self.authority
        canonical, _ = canonical_request(request.method, path, query,
                                         [(n, values.get(n, "")) for n in signed],
                                         hashlib.sha256(request.body).hexdigest())
        scope = credential_scope(date, region, service)
        want = hmac.new(signing_key(self.secret, date, region, service),
                        string_to_sign(timestamp, scope, canonical).encode(),
                        hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(want, fields["Signature"]) else "signature mismatch"

    async def handle(self, request: Request) -> Reply:
        parts = request.path.split("/")
        if request.method != "POST" or len(parts) != 4 or parts[1] != "model" or parts[3] not in (
                "converse", "converse-stream", *INVOKE_OPS):
            return error_reply(404, "UnknownOperationException", f"{request.path} not found")
        why = self.check_signature(request)
        if why is not None:
            return error_reply(403, "InvalidSignatureException", why)
        self.models.append(unquote(parts[2]))
        body = request.json()
        self.bodies.append(body)
        self.raw_bodies.append(request.body)
        if parts[3] in INVOKE_OPS and ("anthropic." in parts[2]
                                       or unquote(parts[2]) in self.claude_profiles):
            return self.claude(parts[3], unquote(parts[2]), body)
        if parts[3] == "invoke":
            return self.invoke(unquote(parts[2]), body)
        if not body.get("messages"):
            return error_reply(400, "ValidationException", "messages are required")
        fault = self.faults.popleft() if self.faults else None
        if fault in ERRORS:
            return error_reply(*ERRORS[fault])
        assert fault is None or fault in STREAM_FAULTS, fault
        if parts[3] == "converse":
            return Reply(200, [("content-type", "application/json")], response_body(self.answer))
        events = stream_events(self.answer)
        reply = Reply(200, [("content-type", "application/vnd.amazon.eventstream")],
                      events=events)
        if fault == "exception_first":
            events[:] = [exception("throttlingException", "Too many tokens, slow down.")]
        elif fault == "exception_mid":
            events[3:] = [exception("modelStreamErrorException", "The model failed mid-way.")]
        elif fault == "bad_crc":
            broken = bytearray(events[3])
            broken[-1] ^= 1
            events[3] = bytes(broken)
        elif fault == "no_end":
            del events[-2:]
        elif fault == "reset":
            reply.reset_after = 4
        elif fault == "reset_early":
            reply.reset_after = 0
        return reply
