"""A fake Gemini API (AI Studio): ``POST /v1beta/models/{model}:generateContent`` and
``:streamGenerateContent?alt=sse``.

Wire format per Gemini API "Generating content": ``GenerateContentResponse`` JSON, streamed as
``data: {...}`` SSE events separated by CRLF CRLF with no end marker; text split over events,
a thought part first, whole ``functionCall`` parts (no ids), ``finishReason`` and
``usageMetadata`` on the last event. Errors are Google's ``{"error": {code, message,
status}}``; a bad key is a 400 ``API_KEY_INVALID`` as the real API answers. ``faults`` holds one
fault name per coming request.

Embeddings per Gemini API "Embeddings": ``:batchEmbedContents`` with at most 100 requests, each
naming the URL's model; ``{"embeddings": [{"values"}]}``, no token counts; a model not in
``embed_models`` is a 404. With ``token_ok`` the fake is Vertex AI's publishers/google instead:
``/v1/projects/{p}/locations/{r}/publishers/google/models/{m}:...`` with an OAuth bearer token,
whose text embeddings are Vertex's ``:predict`` (``predict_reply``).

Token counts per Gemini API "Counting tokens": ``:countTokens`` with ``contents`` or a whole
``generateContentRequest`` (naming the model; never both); on Vertex the counted members sit at
the top and any other member is refused. The fake's tokens are the words of every string in
``contents``, ``systemInstruction`` and ``tools`` (``words``).
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable
from typing import Any

from tests.fakes.answers import TEXT, Answer, pieces
from tests.fakes.http import FakeServer, Reply, Request, Split, json_reply, whole
from tests.fakes.openai import vector_of

_METHODS = (r"(?P<method>generateContent|streamGenerateContent\?alt=sse|batchEmbedContents"
            r"|predict|countTokens)")
_PATH = re.compile(r"/v1beta/models/(?P<model>[^/:?]+):" + _METHODS)
_VERTEX_PATH = re.compile(r"/v1/projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)"
                          r"/publishers/google/models/(?P<model>[^/:?]+):" + _METHODS)
EMBED_MODELS = frozenset({"text-embedding-004", "gemini-embedding-001"})
TASK_TYPES = frozenset({"RETRIEVAL_QUERY", "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY",
                        "CLASSIFICATION", "CLUSTERING", "QUESTION_ANSWERING", "FACT_VERIFICATION",
                        "CODE_RETRIEVAL_QUERY"})
FAULTS = {"400", "403", "429", "500", "503", "error_event", "error_first", "reset", "reset_early",
          "no_finish"}
_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def google_error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": _STATUS[code]}}


def usage(answer: Answer) -> dict[str, int]:
    return {"promptTokenCount": answer.prompt_tokens,
            "candidatesTokenCount": answer.completion_tokens,
            "totalTokenCount": answer.prompt_tokens + answer.completion_tokens}


def candidate(parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        out["finishReason"] = finish
    return out


def response_json(answer: Answer) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": "Thinking it over.", "thought": True}]
    if answer.text:
        parts.append({"text": answer.text})
    parts += [{"functionCall": {"name": c.name, "args": json.loads(c.arguments)}}
              for c in answer.tool_calls]
    return {"candidates": [candidate(parts, "STOP")], "usageMetadata": usage(answer),
            "modelVersion": "gemini-2.0-flash", "responseId": "fake-response"}


def sse(doc: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(doc, ensure_ascii=False).encode() + b"\r\n\r\n"


def stream_events(answer: Answer) -> list[bytes]:
    events = [sse({"candidates": [candidate([{"text": "Hmm.", "thought": True}])]})]
    for part in pieces(answer.text, (5, 11, 3)):
        events.append(sse({"candidates": [candidate([{"text": part}])],
                           "usageMetadata": {"promptTokenCount": answer.prompt_tokens}}))
    calls = [{"functionCall": {"name": c.name, "args": json.loads(c.arguments)}}
             for c in answer.tool_calls]
    events.append(sse({"candidates": [candidate(calls, "STOP")], "usageMetadata": usage(answer),
                       "modelVersion": "gemini-2.0-flash"}))
    return events


def embed_reply(model: str, body: dict[str, Any]) -> Reply:
    """``batchEmbedContents`` as the real API checks and answers it."""
    if model not in EMBED_MODELS:
        return json_reply(404, google_error(404, f"models/{model} is not found for API version "
                                                 "v1beta, or is not supported for embedContent."))
    requests = body.get("requests") or []
    if len(requests) > 100:
        return json_reply(400, google_error(400, "* BatchEmbedContentsRequest.requests: at most "
                                                 "100 requests can be in one batch"))
    out = []
    for at, request in enumerate(requests):
        task = request.get("taskType")
        if task is not None and task not in TASK_TYPES:
            return json_reply(400, google_error(400, f"Invalid value at 'requests[{at}].task_type' "
                                                     f'(TYPE_ENUM), "{task}"'))
        if request.get("model") != f"models/{model}":
            return json_reply(400, google_error(400, "Model in the request must match the URL."))
        text = "".join(part["text"] for part in request["content"]["parts"])
        out.append({"values": vector_of(text, request.get("outputDimensionality") or 3)})
    return json_reply(200, {"embeddings": out})


def predict_reply(model: str, body: dict[str, Any]) -> Reply:
    """Vertex "Get text embeddings": ``instances`` in, ``predictions`` with token statistics
    (one token a word) out; at most 250 instances, one for ``gemini-embedding-001``."""
    if model not in EMBED_MODELS | {"text-embedding-005"}:
        return json_reply(404, google_error(404, f"Publisher Model `publishers/google/models/"
                                                 f"{model}` not found."))
    instances = body.get("instances") or []
    limit = 1 if model == "gemini-embedding-001" else 250
    if len(instances) > limit:
        return json_reply(400, google_error(400, f"{len(instances)} instances exceed the "
                                                 f"limit of {limit} for {model}."))
    dims = (body.get("parameters") or {}).get("outputDimensionality") or 3
    out = []
    for instance in instances:
        task = instance.get("task_type")
        if task is not None and task not in TASK_TYPES:
            return json_reply(400, google_error(400, f"Unsupported task type: {task}"))
        text = instance["content"]
        out.append({"embeddings": {"values": vector_of(text, dims), "statistics": {
            "token_count": float(len(text.split())), "truncated": False}}})
    return json_reply(200, {"predictions": out,
                            "metadata": {"billableCharacterCount": sum(len(i["content"])
                                                                       for i in instances)}})


VERTEX_COUNT_FIELDS = frozenset({"contents", "systemInstruction", "tools", "generationConfig",
                                 "model", "instances"})


def words(value: Any) -> int:
    """The fake tokenizer: the words of every string in ``value`` (keys are not counted)."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, dict):
        return sum(words(item) for item in value.values())
    if isinstance(value, list):
        return sum(words(item) for item in value)
    return 0


def count_reply(model: str, body: dict[str, Any], vertex: bool) -> Reply:
    """``:countTokens`` as the real APIs check and answer it."""
    if vertex:
        unknown = sorted(set(body) - VERTEX_COUNT_FIELDS)
        if unknown:
            return json_reply(400, google_error(400, f'Invalid JSON payload received. Unknown '
                                                     f'name "{unknown[0]}": Cannot find field.'))
        counted = body
    elif "generateContentRequest" in body:
        if "contents" in body:
            return json_reply(400, google_error(400, "contents and generateContentRequest are "
                                                     "mutually exclusive"))
        counted = body["generateContentRequest"]
        if counted.get("model") != f"models/{model}":
            return json_reply(400, google_error(400, "Model in the request must match the URL."))
    else:
        counted = {"contents": body.get("contents")}
    if not counted.get("contents"):
        return json_reply(400, google_error(400, "* CountTokensRequest.contents: contents is "
                                                 "not specified"))
    total = words([counted.get(name) for name in ("contents", "systemInstruction", "tools")])
    doc: dict[str, Any] = {"totalTokens": total,
                           "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}
    if vertex:
        doc["totalBillableCharacters"] = total * 4
    return json_reply(200, doc)


class FakeGemini(FakeServer):
    def __init__(self, *, api_key: str = "AIza-test", answer: Answer = TEXT, split: Split = whole,
                 retry_after: str = "0", token_ok: Callable[[str], bool] | None = None) -> None:
        super().__init__(split=split)
        self.api_key = api_key
        self.token_ok = token_ok
        self.paths: list[dict[str, str]] = []
        self.embed_bodies: list[dict[str, Any]] = []
        self.answer = answer
        self.retry_after = retry_after
        self.faults: deque[str] = deque()
        self.bodies: list[dict[str, Any]] = []
        self.models: list[str] = []
        self.count_bodies: list[dict[str, Any]] = []

    async def handle(self, request: Request) -> Reply:
        match = (_PATH if self.token_ok is None else _VERTEX_PATH).fullmatch(request.path)
        if request.method != "POST" or match is None:
            return json_reply(404, google_error(404, f"{request.path} not found"))
        if self.token_ok is None and request.headers.get("x-goog-api-key") != self.api_key:
            doc = google_error(400, "API key not valid. Please pass a valid API key.")
            return json_reply(400, doc)
        auth = request.headers.get("authorization", "")
        if self.token_ok is not None and not (auth.startswith("Bearer ")
                                              and self.token_ok(auth[7:])):
            return json_reply(401, {"error": {"code": 401, "status": "UNAUTHENTICATED", "message":
                                              "Request had invalid authentication credentials."}})
        if request.headers.get("content-type") != "application/json":
            return json_reply(400, google_error(400, "content-type must be application/json"))
        self.paths.append(match.groupdict())
        body = request.json()
        if match["method"] in ("batchEmbedContents", "predict"):
            self.embed_bodies.append(body)
            fault = self.faults.popleft() if self.faults else None
            if fault is not None:
                code = int(fault)
                return json_reply(code, google_error(code, f"fake {_STATUS[code]}"))
            if match["method"] == "predict":
                return predict_reply(match["model"], body)
            return embed_reply(match["model"], body)
        if match["method"] == "countTokens":
            self.count_bodies.append(body)
            fault = self.faults.popleft() if self.faults else None
            if fault is not None:
                code = int(fault)
                return json_reply(code, google_error(code, f"fake {_STATUS[code]}"),
                                  [("retry-after", self.retry_after)] if code == 429 else [])
            return count_reply(match["model"], body, self.token_ok is not None)
        self.bodies.append(body)
        self.models.append(match["model"])
        if not body.get("contents"):
            return json_reply(400, google_error(400, "* GenerateContentRequest.contents: "
                                                     "contents is not specified"))
        fault = self.faults.popleft() if self.faults else None
        assert fault is None or fault in FAULTS, fault
        if fault in ("400", "403", "500", "503"):
            code = int(fault)
            return json_reply(code, google_error(code, f"fake {_STATUS[code]}"))
        if fault == "429":
            doc = google_error(429, "Resource has been exhausted (e.g. check quota).")
            return json_reply(429, doc, [("retry-after", self.retry_after)])
        if match["method"] == "generateContent":
            return json_reply(200, response_json(self.answer))
        events = stream_events(self.answer)
        reply = Reply(200, [("content-type", "text/event-stream")], events=events)
        if fault == "error_event":
            events[2:] = [sse(google_error(503, "The model is overloaded."))]
        elif fault == "error_first":
            events[:] = [sse(google_error(503, "The model is overloaded."))]
        elif fault == "reset":
            reply.reset_after = 3
        elif fault == "reset_early":
            reply.reset_after = 0
        elif fault == "no_finish":
            del events[-1]
        return reply
