"""Fake vLLM and llama.cpp servers: ``FakeOpenAI``'s chat under ``/v1`` plus each server's own
token counting at the root.

vLLM: ``POST /tokenize`` with ``{"model", "messages", "tools"?}`` applies the chat template and
answers ``{"count", "max_model_len", "tokens"}``; an unknown ``model`` is vLLM's 404 error
object. llama.cpp server: ``POST /apply-template`` with ``{"messages"}`` answers ``{"prompt"}``
(the turns in a ChatML-like template); ``POST /tokenize`` with ``{"content", "add_special"?,
"parse_special"?}`` answers ``{"tokens"}``. The fake tokenizer is ``words``: one token a word,
each template marker one token, plus a BOS when ``add_special``. ``faults`` holds ``"400"``,
``"500"`` or ``"bad_count"`` (an answer without its count) per coming count request.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.gemini import words
from tests.fakes.http import Reply, Request, json_reply
from tests.fakes.openai import FakeOpenAI

TEMPLATE_TOKENS = 3
"""What the fake vLLM template adds a message (role marker, start, end)."""
GENERATION_PROMPT = 2


def vllm_count(body: dict[str, Any]) -> int:
    """The fake vLLM's count of a chat tokenize body."""
    messages = body["messages"]
    return (sum(TEMPLATE_TOKENS + words(message.get("content")) + words(message.get("tool_calls"))
                for message in messages)
            + words(body.get("tools")) + GENERATION_PROMPT)


def chatml(body: dict[str, Any]) -> str:
    """The fake llama.cpp template: each turn between markers, tools as JSON up front."""
    out = []
    if body.get("tools"):
        out.append("<|tools|> " + json.dumps(body["tools"]) + " <|end|>")
    for message in body["messages"]:
        content = message.get("content")
        text = content if isinstance(content, str) else json.dumps(content)
        out.append(f"<|{message['role']}|> {text} <|end|>")
    return "\n".join(out) + "\n<|assistant|>"


class FakeTokenizing(FakeOpenAI):
    """``flavour`` is ``"vllm"`` or ``"llamacpp"``; ``counted`` keeps (path, body) of each
    count request."""

    def __init__(self, flavour: str, *, model: str = "llama", **kw: Any) -> None:
        super().__init__(**kw)
        self.flavour = flavour
        self.model = model
        self.counted: list[tuple[str, dict[str, Any]]] = []

    async def handle(self, request: Request) -> Reply:
        paths = ("/tokenize",) if self.flavour == "vllm" else ("/tokenize", "/apply-template")
        if request.method != "POST" or request.path not in paths:
            return await super().handle(request)
        if self.api_key is not None and (request.headers.get("authorization")
                                         != f"Bearer {self.api_key}"):
            return json_reply(401, {"detail": "Unauthorized"})
        body = request.json()
        self.counted.append((request.path, body))
        fault = self.faults.popleft() if self.faults else None
        if fault in ("400", "500"):
            return json_reply(int(fault), {"object": "error", "message": f"fake {fault}",
                                           "type": "BadRequestError", "code": int(fault)})
        if self.flavour == "vllm":
            return self._vllm(body, fault)
        if request.path == "/apply-template":
            return json_reply(200, {"prompt": chatml(body)})
        tokens = len(body["content"].split()) + (1 if body.get("add_special") else 0)
        if fault == "bad_count":
            return json_reply(200, {"n": tokens})
        return json_reply(200, {"tokens": list(range(tokens))})

    def _vllm(self, body: dict[str, Any], fault: str | None) -> Reply:
        if body.get("model") != self.model:
            return json_reply(404, {"object": "error", "message": f"The model "
                                    f"`{body.get('model')}` does not exist.",
                                    "type": "NotFoundError", "code": 404})
        count = vllm_count(body)
        if fault == "bad_count":
            return json_reply(200, {"tokens": list(range(count))})
        return json_reply(200, {"count": count, "max_model_len": 8192,
                                "tokens": list(range(count))})
