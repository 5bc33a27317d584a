"""A fake OpenAI-compatible server: ``POST /v1/chat/completions`` (JSON and SSE) and
``POST /v1/embeddings`` and the legacy ``POST /v1/completions``.

Wire format per OpenAI "Create chat completion", "The chat completion chunk object" (tool call
deltas by ``index``, ``stream_options.include_usage`` adds a final ``choices: []`` chunk) and
``data: [DONE]``. Records the raw request bodies; ``faults`` holds one fault per request
(``ok`` for a normal answer, so scripts can interleave failures and successes).
Embeddings per OpenAI "Create embeddings": ``data[i].embedding`` a float list, or base64 of
little-endian float32 when ``encoding_format`` is ``base64``; each vector is ``vector_of`` its
input, so a client can check order. Hugging Face's faults: ``hf_error`` (400 ``{"error": "..."}``)
``hf_loading`` (503 with ``estimated_time``) and ``hf_stream_error`` (TGI's
``data: {"error": ..., "error_type": "validation"}`` event).
"""

from __future__ import annotations

import base64
import json
import struct
from collections import deque
from typing import Any

from tests.fakes.answers import TEXT, Answer, pieces
from tests.fakes.http import FakeServer, Reply, Request, Split, json_reply, whole

FAULTS = {"ok", "429", "500", "503", "400", "401", "404", "error_event", "error_first", "reset",
          "reset_early", "stall", "hold", "no_done", "error_200", "hf_error", "hf_loading", "hf_stream_error",
          "content_filter"}
CREATED = 1_700_000_000
PATHS = {"chat": "/chat/completions", "embeddings": "/embeddings",
         "completions": "/completions"}


def error_doc(
    message: str, kind: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def data(doc: Any) -> bytes:
    return b"data: " + json.dumps(doc, ensure_ascii=False).encode() + b"\n\n"


def vector_of(item: str | list[int], dimensions: int = 3) -> list[float]:
    """The fake's embedding of one input: exact in float32, and different for each input."""
    text = item if isinstance(item, str) else ",".join(map(str, item))
    head = float(sum(text.encode()) % 1000)
    return [head, float(len(text)), *[0.5 * i for i in range(dimensions - 2)]]


def embeddings_json(body: dict[str, Any], model: str) -> dict[str, Any]:
    items = body["input"]
    if isinstance(items, str) or (items and isinstance(items[0], int)):
        items = [items]
    dims = body.get("dimensions") or 3
    data = []
    for index, item in enumerate(items):
        vector: Any = vector_of(item, dims)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(len(i) if isinstance(i, list) else len(i.split()) for i in items)
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def text_completion_json(answer: Answer, model: str) -> dict[str, Any]:
    """OpenAI's legacy ``text_completion`` object."""
    return {"id": "cmpl-fake", "object": "text_completion", "created": CREATED, "model": model,
            "choices": [{"text": answer.text, "index": 0, "logprobs": None,
                         "finish_reason": "stop"}],
            "usage": _usage(answer)}


def text_chunk_events(answer: Answer, model: str, include_usage: bool) -> list[bytes]:
    def chunk(text: str, finish: str | None = None) -> bytes:
        return data({"id": "cmpl-fake", "object": "text_completion", "created": CREATED,
                     "model": model, "choices": [{"text": text, "index": 0, "logprobs": None,
                                                  "finish_reason": finish}]})

    events = [chunk(part) for part in pieces(answer.text)] + [chunk("", "stop")]
    if include_usage:
        events.append(data({"id": "cmpl-fake", "object": "text_completion", "created": CREATED,
                            "model": model, "choices": [], "usage": _usage(answer)}))
    return [*events, b"data: [DONE]\n\n"]


def completion_json(answer: Answer, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text or None,
                               "refusal": None}
    if answer.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in answer.tool_calls
        ]
    return {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": answer.finish_reason}],
        "usage": _usage(answer), "system_fingerprint": "fp_fake", "x_vendor_extra": {"kept": True},
    }


def _usage(answer: Answer) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens}
    if answer.cached_tokens:
        usage["prompt_tokens_details"] = {"cached_tokens": answer.cached_tokens}
    return usage


def chunk_events(answer: Answer, model: str, include_usage: bool) -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        doc: dict[str, Any] = {
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": CREATED,
            "model": model, "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            doc["usage"] = None
        return data(doc)

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": part}) for part in pieces(answer.text)]
    for index, call in enumerate(answer.tool_calls):
        events.append(chunk({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                             "function": {"name": call.name, "arguments": ""}}]}))
        events += [chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
                   for part in pieces(call.arguments)]
    events.append(chunk({}, answer.finish_reason))
    if include_usage:
        events.append(data({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                            "created": CREATED, "model": model, "choices": [],
                            "usage": _usage(answer)}))
    events.append(b"data: [DONE]\n\n")
    return events


class FakeOpenAI(FakeServer):
    """Answers ``answer`` under the model name ``reports`` (default: the model it was asked);
    ``answer_headers`` go on every answer, success or error."""

    prefix = "/v1"

    def __init__(self, *, api_key: str | None = None, answer: Answer = TEXT, split: Split = whole,
                 retry_after: str = "0", reports: str | None = None,
                 answer_headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(split=split)
        self.api_key = api_key
        self.answer = answer
        self.retry_after = retry_after
        self.reports = reports
        self.answer_headers = answer_headers or []
        self.faults: deque[str] = deque()
        self.raw_bodies: list[bytes] = []
        self.embedded: list[list[Any]] = []  # the inputs of each embeddings request

    def route(self, request: Request) -> tuple[str, str | None] | Reply:
        """(a kind of ``PATHS``, the model the path names, if any), or the error reply."""
        for kind, path in PATHS.items():
            if request.method == "POST" and request.path == self.prefix + path:
                auth = request.headers.get("authorization")
                if self.api_key is not None and auth != f"Bearer {self.api_key}":
                    return json_reply(401, error_doc("Incorrect API key provided",
                                                     "invalid_request_error", "invalid_api_key"))
                return kind, None
        return json_reply(404, error_doc(f"Unknown path {request.path}", "invalid_request_error"))

    async def handle(self, request: Request) -> Reply:
        routed = self.route(request)
        if isinstance(routed, Reply):
            return routed
        reply = self.answer_to(request, *routed)
        reply.headers += self.answer_headers
        return reply

    def answer_to(self, request: Request, kind: str, path_model: str | None) -> Reply:
        self.raw_bodies.append(request.body)
        body = request.json()
        model = self.reports or path_model or body["model"]
        fault = self.faults.popleft() if self.faults else None
        assert fault is None or fault in FAULTS, fault
        if fault == "hf_error":
            return json_reply(400, {"error": "Input validation error: `inputs` must be non-empty",
                                    "error_type": "validation"})
        if fault == "hf_loading":
            return json_reply(503, {"error": f"Model {model} is currently loading",
                                    "estimated_time": 1.5})
        if fault == "429":
            doc = error_doc("Rate limit reached for requests", "requests", "rate_limit_exceeded")
            return json_reply(429, doc, [("retry-after", self.retry_after)])
        if fault in ("500", "503"):
            return json_reply(int(fault), error_doc("The server had an error", "server_error"))
        if fault == "400":
            return json_reply(400, error_doc("'messages' is too short", "invalid_request_error",
                                             None, "messages"))
        if fault == "401":
            return json_reply(401, error_doc("Incorrect API key provided", "invalid_request_error",
                                             "invalid_api_key"))
        if fault == "404":
            return json_reply(404, error_doc(f"The model `{model}` does not exist",
                                             "invalid_request_error", "model_not_found"))
        if fault == "stall":
            return Reply(stall=True)
        if fault == "error_200":
            return json_reply(200, error_doc("Model is still loading", "invalid_request_error"))
        if kind == "embeddings":
            items = body["input"]
            single = isinstance(items, str) or (items and isinstance(items[0], int))
            self.embedded.append([items] if single else list(items))
            return json_reply(200, embeddings_json(body, model))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if kind == "completions":
            if not body.get("stream"):
                return json_reply(200, text_completion_json(self.answer, model))
            return Reply(200, [("content-type", "text/event-stream")],
                         events=text_chunk_events(self.answer, model, include_usage))
        if not body.get("stream"):
            return json_reply(200, completion_json(self.answer, model))
        events = chunk_events(self.answer, model, include_usage)
        reply = Reply(200, [("content-type", "text/event-stream")], events=events)
        if fault == "error_event":
            events[4:] = [data(error_doc("The server had an error while processing",
                                         "server_error"))]
        elif fault == "hf_stream_error":
            events[:] = [data({"error": "Input validation error: `max_new_tokens` must be > 0",
                               "error_type": "validation"})]
        elif fault == "error_first":
            events[:] = [data(error_doc("Invalid 'tools': bad schema", "invalid_request_error"))]
        elif fault == "no_done":
            events.pop()
        elif fault == "reset":
            reply.reset_after = 4
        elif fault == "reset_early":
            reply.reset_after = 0
        elif fault == "hold":
            reply.hold_after = 4
        return reply
