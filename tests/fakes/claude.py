"""Fake Claude upstreams: Anthropic's ``POST /v1/messages`` and Vertex AI's rawPredict paths.

Wire format per Anthropic "Messages > Create a Message" and "Streaming Messages": typed SSE
events, pings, text and ``input_json_delta`` deltas split mid-token, ``error`` events. The
Vertex flavour checks the Bearer token, that ``model`` is absent from the body and that
``anthropic_version`` is present. ``faults`` holds one fault name per coming request.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable
from typing import Any

from tests.fakes.answers import TEXT, Answer, pieces
from tests.fakes.http import FakeServer, Reply, Request, Split, json_reply, whole

_VERTEX_PATH = re.compile(
    r"/v1/projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/publishers/anthropic/models/"
    r"(?P<model>[^/:]+):(?P<method>rawPredict|streamRawPredict)"
)
COUNTED_TOKENS = 4242
"""What the fake's count_tokens endpoint answers."""
FAULTS = {"429", "500", "529", "401", "overloaded_event", "error_first", "reset", "reset_early",
          "stall", "hold"}


def error_doc(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def sse(kind: str, doc: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(doc, ensure_ascii=False)}\n\n".encode()


def message_json(answer: Answer, model: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if answer.text:
        content.append({"type": "text", "text": answer.text})
    for call in answer.tool_calls:
        content.append({"type": "tool_use", "id": call.id, "name": call.name,
                        "input": json.loads(call.arguments)})
    return {
        "id": "msg_01Fake", "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": answer.stop_reason, "stop_sequence": None,
        "usage": _usage(answer),
    }


def _usage(answer: Answer) -> dict[str, int]:
    """Anthropic's usage: ``input_tokens`` excludes the cache reads and writes, counted apart."""
    usage = {"input_tokens": answer.prompt_tokens - answer.cached_tokens
             - answer.cache_write_tokens, "output_tokens": answer.completion_tokens}
    if answer.cached_tokens or answer.cache_write_tokens:
        usage["cache_read_input_tokens"] = answer.cached_tokens
        usage["cache_creation_input_tokens"] = answer.cache_write_tokens
    return usage


def message_events(answer: Answer, model: str) -> list[bytes]:
    """The full event stream for ``answer``, one SSE frame per list item."""
    shell = message_json(Answer(prompt_tokens=answer.prompt_tokens, completion_tokens=1,
                                cached_tokens=answer.cached_tokens,
                                cache_write_tokens=answer.cache_write_tokens), model)
    shell.update(content=[], stop_reason=None)
    events = [sse("message_start", {"type": "message_start", "message": shell}),
              sse("ping", {"type": "ping"})]
    index = 0
    if answer.text:
        events.append(sse("content_block_start", {"type": "content_block_start", "index": 0,
                                                  "content_block": {"type": "text", "text": ""}}))
        for part in pieces(answer.text):
            events.append(sse("content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": part}}))
        events.append(sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
        index = 1
    for call in answer.tool_calls:
        events.append(sse("content_block_start", {
            "type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}}))
        for part in ["", *pieces(call.arguments)]:
            events.append(sse("content_block_delta", {
                "type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": part}}))
        events.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
        events.append(sse("ping", {"type": "ping"}))
        index += 1
    events.append(sse("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": answer.stop_reason, "stop_sequence": None},
        "usage": {"output_tokens": answer.completion_tokens}}))
    events.append(sse("message_stop", {"type": "message_stop"}))
    return events


class FakeClaude(FakeServer):
    """Claude over Anthropic's API (``flavour="anthropic"``) or Vertex AI (``"vertex"``)."""

    def __init__(
        self,
        *,
        flavour: str = "anthropic",
        api_key: str = "sk-ant-test",
        token_ok: Callable[[str], bool] | None = None,
        answer: Answer = TEXT,
        split: Split = whole,
        retry_after: str = "0",
    ) -> None:
        super().__init__(split=split)
        self.flavour = flavour
        self.api_key = api_key
        self.token_ok = token_ok or (lambda token: False)
        self.answer = answer
        self.retry_after = retry_after
        self.faults: deque[str] = deque()
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[dict[str, str]] = []

    async def handle(self, request: Request) -> Reply:
        if request.path.endswith(("/v1/messages/count_tokens", "/count-tokens:rawPredict")):
            self.bodies.append(request.json())
            return json_reply(200, {"input_tokens": COUNTED_TOKENS})
        problem, stream, model = self._check(request)
        if problem is not None:
            return problem
        fault = self.faults.popleft() if self.faults else None
        assert fault is None or fault in FAULTS, fault
        if fault == "429":
            doc = error_doc("rate_limit_error", "Number of requests has exceeded your rate limit")
            return json_reply(429, doc, [("retry-after", self.retry_after)])
        if fault == "500":
            return json_reply(500, error_doc("api_error", "Internal server error"))
        if fault == "529":
            return json_reply(529, error_doc("overloaded_error", "Overloaded"))
        if fault == "401":
            return json_reply(401, error_doc("authentication_error", "invalid x-api-key"))
        if fault == "stall":
            return Reply(stall=True)
        if not stream:
            body = json.dumps(message_json(self.answer, model)).encode()
            if fault == "reset":
                return Reply(200, [("content-type", "application/json")], events=[body[:20]],
                             reset_after=1)
            return Reply(200, [("content-type", "application/json")], body)
        events = message_events(self.answer, model)
        reply = Reply(200, [("content-type", "text/event-stream"), ("cache-control", "no-cache")],
                      events=events)
        if fault == "overloaded_event":
            events[5:] = [sse("error", error_doc("overloaded_error", "Overloaded"))]
        elif fault == "error_first":
            events[:] = [sse("error", error_doc("overloaded_error", "Overloaded"))]
        elif fault == "reset":
            reply.reset_after = 6
        elif fault == "reset_early":
            reply.reset_after = 0
        elif fault == "hold":
            reply.hold_after = 6
        return reply

    def _check(self, request: Request) -> tuple[Reply | None, bool, str]:
        """(an error reply if the request is not what the real API accepts, stream?, model)."""
        headers = request.headers
        if request.method != "POST":
            return json_reply(405, error_doc("invalid_request_error", "POST only")), False, ""
        if headers.get("content-type") != "application/json":
            return _bad("content-type must be application/json"), False, ""
        try:
            body = request.json()
        except ValueError:
            return _bad("body is not JSON"), False, ""
        self.bodies.append(body)
        for name in ("max_tokens", "messages"):
            if name not in body:
                return _bad(f"{name}: Field required"), False, ""
        if self.flavour == "anthropic":
            if request.path != "/v1/messages":
                return json_reply(404, error_doc("not_found_error", "Not found")), False, ""
            if headers.get("x-api-key") != self.api_key:
                doc = error_doc("authentication_error", "invalid x-api-key")
                return json_reply(401, doc), False, ""
            if headers.get("anthropic-version") != "2023-06-01":
                return _bad("anthropic-version header is required"), False, ""
            if "model" not in body:
                return _bad("model: Field required"), False, ""
            return None, bool(body.get("stream")), body["model"]
        match = _VERTEX_PATH.fullmatch(request.path)
        if match is None:
            return json_reply(404, [{"error": {"code": 404, "message": "not found",
                                              "status": "NOT_FOUND"}}]), False, ""
        self.paths.append(match.groupdict())
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not self.token_ok(auth[7:]):
            doc = {"error": {"code": 401, "status": "UNAUTHENTICATED",
                             "message": "Request had invalid authentication credentials."}}
            return json_reply(401, doc), False, ""
        if "model" in body:
            return _bad("model: Extra inputs are not permitted"), False, ""
        if body.get("anthropic_version") != "vertex-2023-10-16":
            return _bad("anthropic_version: Field required"), False, ""
        stream = match["method"] == "streamRawPredict"
        if bool(body.get("stream")) != stream:
            return _bad("stream must be true exactly on streamRawPredict"), False, ""
        return None, stream, match["model"]


def _bad(message: str) -> Reply:
    return json_reply(400, error_doc("invalid_request_error", message))
