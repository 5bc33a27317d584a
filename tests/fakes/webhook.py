"""A loopback webhook receiver: records each POSTed JSON document; ``fail_first`` answers
that many requests with 503 first (to exercise the sender's retries)."""

from __future__ import annotations

from typing import Any

from tests.fakes.http import FakeServer, Reply, Request, json_reply


class Webhook(FakeServer):
    def __init__(self, *, fail_first: int = 0) -> None:
        super().__init__()
        self.fail_first = fail_first
        self.received: list[Any] = []
        self.attempts = 0

    async def handle(self, request: Request) -> Reply:
        self.attempts += 1
        if self.attempts <= self.fail_first:
            return json_reply(503, {"error": "try later"})
        self.received.append(request.json())
        return json_reply(200, {"ok": True})
