"""The ``redact`` middleware: masks e-mail addresses and digit runs in what the user sends before
routing, and counts the answers it sees.

What it rewrites depends on the door (``ctx.request`` is that door's request): the user messages
of a chat request (``/v1/chat/completions``, and ``/v1/messages``, whose request the door has
already translated to chat's shape), and the ``input`` of an embeddings request (a string or a
list of strings; token arrays are left as they are).

Options (``[middleware.options]``): ``pattern`` (a regular expression; default: e-mail
addresses and runs of 3+ digits), ``replacement`` (default ``[redacted]``), ``fail_on`` (a text
that makes ``on_request`` raise) and ``fail_answer_on`` (a text that makes ``on_answer`` raise
for that request): ways to see ModelMux contain a broken middleware.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from modelmux.plugins import RequestContext, Stage

PATTERN = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\d{3,}"
log = logging.getLogger("modelmux.plugins.redact")


class Redact(Stage):
    """Rewrites user text before the route stage; ``ctx.state["redact"]`` holds the count."""

    kind = "middleware"

    def __init__(self, options: dict[str, Any]) -> None:
        self.pattern = re.compile(str(options.get("pattern", PATTERN)))
        self.replacement = str(options.get("replacement", "[redacted]"))
        self.fail_on = str(options.get("fail_on", ""))
        self.fail_answer_on = str(options.get("fail_answer_on", ""))
        self.answers = 0

    def _clean(self, text: str, ctx: RequestContext) -> tuple[str, int]:
        if self.fail_on and self.fail_on in text:
            raise RuntimeError("redact was asked to fail")
        if self.fail_answer_on and self.fail_answer_on in text:
            ctx.state[f"{self.name}.fail_answer"] = True
        return self.pattern.subn(self.replacement, text)

    def _messages(self, body: dict[str, Any], ctx: RequestContext) -> int:
        found = 0
        for message in body.get("messages", []):
            if message.get("role") != "user":
                continue
            content = message.get("content")
            if isinstance(content, str):
                message["content"], count = self._clean(content, ctx)
                found += count
            elif isinstance(content, list):
                for part in content:
                    if part.get("type") == "text":
                        part["text"], count = self._clean(part["text"], ctx)
                        found += count
        return found

    def _input(self, body: dict[str, Any], ctx: RequestContext) -> int:
        value = body.get("input")
        if isinstance(value, str):
            body["input"], found = self._clean(value, ctx)
            return found
        found = 0
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str):
                    value[i], count = self._clean(item, ctx)
                    found += count
        return found

    async def on_request(self, ctx: RequestContext) -> None:
        body = ctx.json()
        found = self._input(body, ctx) if "input" in body else self._messages(body, ctx)
        ctx.state[self.name] = found
        if found:
            ctx.replace_json(body)

    def on_answer(self, ctx: RequestContext) -> None:
        if ctx.state.get(f"{self.name}.fail_answer"):
            raise RuntimeError("redact was asked to fail observing the answer")
        self.answers += 1
        log.info("redact: answer %d (request %s, status %d): %d redaction(s)", self.answers,
                 ctx.request_id, ctx.status, ctx.state.get(self.name, 0))
