"""The ``redact`` middleware: masks e-mail addresses and digit runs in user messages before
routing, and counts the answers it sees.

Options (``[middleware.options]``): ``pattern`` (a regular expression; default: e-mail
addresses and runs of 3+ digits), ``replacement`` (default ``[redacted]``), ``fail_on`` (a text
that makes it raise, to see ModelMux contain a broken middleware).
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
        self.answers = 0

    def _clean(self, text: str) -> tuple[str, int]:
        if self.fail_on and self.fail_on in text:
            raise RuntimeError("redact was asked to fail")
        return self.pattern.subn(self.replacement, text)

    async def on_request(self, ctx: RequestContext) -> None:
        body = ctx.json()
        found = 0
        for message in body.get("messages", []):
            if message.get("role") != "user":
                continue
            content = message.get("content")
            if isinstance(content, str):
                message["content"], count = self._clean(content)
                found += count
            elif isinstance(content, list):
                for part in content:
                    if part.get("type") == "text":
                        part["text"], count = self._clean(part["text"])
                        found += count
        ctx.state[self.name] = found
        if found:
            ctx.replace_json(body)

    def on_answer(self, ctx: RequestContext) -> None:
        self.answers += 1
        log.info("redact: answer %d (request %s, status %d): %d redaction(s)", self.answers,
                 ctx.request_id, ctx.status, ctx.state.get(self.name, 0))
