"""A fake Cohere v2 chat API: ``POST /v2/chat`` with ``Authorization: Bearer``.

Wire format per Cohere API "Chat" (v2) and "Chat with Streaming": a whole answer with
``message.content`` (or ``tool_plan`` and ``tool_calls``), ``finish_reason`` and ``usage``
(``billed_units`` and ``tokens``); a stream of typed SSE events (``event:`` line and a ``type``
in the data): message-start, content-start/delta/end, tool-plan-delta, tool-call-start/delta/
end with arguments split mid-token, citation events, message-end. Errors are
``{"id", "message"}``. ``faults`` holds one fault name per coming request.

Embeddings per Cohere API "Embed (v2)": ``POST /v2/embed`` with at most 96 ``texts``, a required
``input_type`` and ``embedding_types``; ``{"embeddings": {"float": [...]}, "meta":
{"billed_units": {"input_tokens"}}}``; a model not in ``EMBED_MODELS`` is a 404.

Tokenize per Cohere API "Tokenize": ``POST /v1/tokenize`` ``{"text", "model"}`` with 1 to
65536 characters of text; ``{"tokens", "token_strings", "meta"}``, one token a word.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from tests.fakes.answers import TEXT, Answer, pieces
from tests.fakes.http import FakeServer, Reply, Request, Split, json_reply, whole
from tests.fakes.openai import vector_of

EMBED_MODELS = frozenset({"embed-english-v3.0", "embed-v4.0"})
INPUT_TYPES = frozenset({"search_document", "search_query", "classification", "clustering"})


def embed_tokens(text: str) -> int:
    """The fake's billed tokens for one text: one per word."""
    return len(text.split()) or 1


def embed_reply(body: dict[str, Any]) -> Reply:
    """``/v2/embed`` as the real API checks and answers it."""
    model, texts = body.get("model"), body.get("texts") or []
    if model not in EMBED_MODELS:
        return json_reply(404, error_doc(f"model '{model}' not found, make sure the correct "
                                         "model ID was used and that you have access to the "
                                         "model."))
    if len(texts) > 96:
        return json_reply(400, error_doc("invalid request: total number of texts must be at "
                                         f"most 96 - received {len(texts)}"))
    if body.get("input_type") not in INPUT_TYPES:
        return json_reply(400, error_doc("invalid request: valid input_type must be provided "
                                         "with the provided model"))
    dims = body.get("output_dimension") or 3
    vectors = {kind: [vector_of(text, dims) for text in texts]
               for kind in body.get("embedding_types") or ["float"]}
    tokens = sum(embed_tokens(text) for text in texts)
    return json_reply(200, {"id": "embed-1", "texts": texts, "embeddings": vectors,
                            "meta": {"api_version": {"version": "2"},
                                     "billed_units": {"input_tokens": tokens}}})

def tokenize_reply(body: dict[str, Any]) -> Reply:
    """``/v1/tokenize`` as the real API checks and answers it (the fake's tokens are words)."""
    text, model = body.get("text"), body.get("model")
    if not isinstance(model, str) or not isinstance(text, str):
        return json_reply(400, error_doc("invalid request: text and model are required"))
    if not 1 <= len(text) <= 65536:
        return json_reply(400, error_doc("invalid request: text must be between 1 and 65536 "
                                         "characters"))
    words = text.split()
    return json_reply(200, {"tokens": [len(w) for w in words], "token_strings": words,
                            "meta": {"api_version": {"version": "1"}}})


FAULTS = {"400", "401", "429", "500", "error_end", "reset", "reset_early", "no_end"}
TEMPLATE_TOKENS = 200
"""Extra prompt tokens in ``usage.tokens`` (the chat template): ``billed_units`` has none."""


def error_doc(message: str) -> dict[str, Any]:
    return {"id": "c0ffee00-0000-4000-8000-000000000000", "message": message}


def usage(answer: Answer) -> dict[str, Any]:
    return {"billed_units": {"input_tokens": answer.prompt_tokens,
                             "output_tokens": answer.completion_tokens},
            "tokens": {"input_tokens": answer.prompt_tokens + TEMPLATE_TOKENS,
                       "output_tokens": answer.completion_tokens}}


def response_json(answer: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant"}
    if answer.tool_calls:
        message["tool_plan"] = answer.text
        message["tool_calls"] = [{"id": c.id, "type": "function", "function": {
            "name": c.name, "arguments": c.arguments}} for c in answer.tool_calls]
    else:
        message["content"] = [{"type": "text", "text": answer.text}]
    return {"id": "resp-1", "message": message,
            "finish_reason": "TOOL_CALL" if answer.tool_calls else "COMPLETE",
            "usage": usage(answer)}


def sse(doc: dict[str, Any]) -> bytes:
    return f"event: {doc['type']}\ndata: {json.dumps(doc, ensure_ascii=False)}\n\n".encode()


def stream_events(answer: Answer) -> list[bytes]:
    events = [sse({"id": "resp-1", "type": "message-start", "delta": {"message": {
        "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [],
        "citations": []}}})]
    if answer.tool_calls:
        events += [sse({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": p}}})
                   for p in pieces(answer.text)]
        for i, call in enumerate(answer.tool_calls):
            events.append(sse({"type": "tool-call-start", "index": i, "delta": {"message": {
                "tool_calls": {"id": call.id, "type": "function",
                               "function": {"name": call.name, "arguments": ""}}}}}))
            events += [sse({"type": "tool-call-delta", "index": i, "delta": {"message": {
                "tool_calls": {"function": {"arguments": p}}}}}) for p in pieces(call.arguments)]
            events.append(sse({"type": "tool-call-end", "index": i}))
    else:
        events.append(sse({"type": "content-start", "index": 0, "delta": {"message": {
            "content": {"type": "text", "text": ""}}}}))
        events += [sse({"type": "content-delta", "index": 0, "delta": {"message": {
            "content": {"text": p}}}}) for p in pieces(answer.text)]
        events.append(sse({"type": "content-end", "index": 0}))
        events.append(sse({"type": "citation-start", "index": 0, "delta": {"message": {
            "citations": {"start": 0, "end": 1, "text": "H", "sources": []}}}}))
        events.append(sse({"type": "citation-end", "index": 0}))
    events.append(sse({"type": "message-end", "delta": {
        "finish_reason": "TOOL_CALL" if answer.tool_calls else "COMPLETE",
        "usage": usage(answer)}}))
    return events


class FakeCohere(FakeServer):
    def __init__(self, *, api_key: str = "co-test", answer: Answer = TEXT, split: Split = whole,
                 retry_after: str = "0") -> None:
        super().__init__(split=split)
        self.api_key = api_key
        self.answer = answer
        self.retry_after = retry_after
        self.faults: deque[str] = deque()
        self.bodies: list[dict[str, Any]] = []
        self.embed_bodies: list[dict[str, Any]] = []
        self.tokenize_bodies: list[dict[str, Any]] = []

    async def handle(self, request: Request) -> Reply:
        if request.method != "POST" or request.path not in ("/v2/chat", "/v2/embed",
                                                            "/v1/tokenize"):
            return json_reply(404, error_doc(f"{request.path} not found"))
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return json_reply(401, error_doc("invalid api token"))
        body = request.json()
        if request.path == "/v1/tokenize":
            self.tokenize_bodies.append(body)
            if self.faults:
                fault = int(self.faults.popleft())
                return json_reply(fault, error_doc(f"fake {fault}"))
            return tokenize_reply(body)
        if request.path == "/v2/embed":
            self.embed_bodies.append(body)
            if self.faults:
                fault = int(self.faults.popleft())
                return json_reply(fault, error_doc(f"fake {fault}"))
            return embed_reply(body)
        self.bodies.append(body)
        if "model" not in body or not body.get("messages"):
            return json_reply(400, error_doc("invalid request: model and messages are required"))
        fault = self.faults.popleft() if self.faults else None
        assert fault is None or fault in FAULTS, fault
        if fault in ("400", "401", "500"):
            return json_reply(int(fault), error_doc(f"fake {fault}"))
        if fault == "429":
            return json_reply(429, error_doc("You are using a Trial key, which is limited"),
                              [("retry-after", self.retry_after)])
        if not body.get("stream"):
            return json_reply(200, response_json(self.answer))
        events = stream_events(self.answer)
        reply = Reply(200, [("content-type", "text/event-stream")], events=events)
        if fault == "error_end":
            events[3:] = [sse({"type": "message-end", "delta": {
                "finish_reason": "ERROR", "error": "internal generation failure"}})]
        elif fault == "reset":
            reply.reset_after = 4
        elif fault == "reset_early":
            reply.reset_after = 0
        elif fault == "no_end":
            del events[-1]
        return reply
