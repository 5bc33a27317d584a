"""Non-streamed upstream answers too large for one request or for the process, end to end:
the client gets an OpenAI-shaped error, the server logs it and keeps serving."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from modelmux.upstream.budget import BodyBudget
from tests.fakes.openai import FakeOpenAI
from tests.fakes.trickle import Trickler
from tests.providers.harness import MESSAGES, gateway
from tests.server.helpers import connect, read_response
from tests.upstream import run


def config(origin: str) -> str:
    return f"""
[[provider]]
name = "local"
type = "openai_compatible"
models = ["llama"]
base_url = "{origin}/v1"
max_retries = 0
"""


async def _ask(port: int) -> tuple[int, dict[str, str], dict[str, dict[str, str]]]:
    raw = json.dumps({"model": "llama", "messages": MESSAGES}).encode()
    reader, writer = await connect(port)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n"
                 b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                 % (len(raw), raw))
    status, headers, body = await read_response(reader)
    writer.close()
    await writer.wait_closed()
    return status, headers, json.loads(body)


def test_an_answer_declaring_2_gib_is_a_502_before_its_body_is_read() -> None:
    async def main() -> None:
        async with Trickler() as up, gateway(config(up.origin)) as gw:
            status, _, doc = await _ask(gw.port)
            assert status == 502
            assert doc["error"]["code"] == "upstream_response_too_large"
            assert doc["error"]["type"] == "upstream_error"
            async with asyncio.timeout(5.0):
                while up.hung_up + up.gave_up == 0:
                    up.done.clear()
                    await up.done.wait()
            assert (up.hung_up, up.gave_up) == (1, 0) and up.sent < up.limit

    run("asyncio", main())


def test_an_answer_over_the_buffer_budget_is_a_503_and_a_log_line(
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        budget = BodyBudget(64)  # smaller than any completion the fake answers
        async with FakeOpenAI() as up, gateway(config(up.origin), budget=budget) as gw:
            with caplog.at_level(logging.WARNING, logger="modelmux.upstream"):
                status, headers, doc = await _ask(gw.port)
            assert status == 503 and headers["retry-after"] == "1"
            assert doc["error"]["code"] == "upstream_buffer_full"
            assert doc["error"]["type"] == "server_error"
            assert budget.in_use == 0
            assert any("buffer budget" in r.getMessage() for r in caplog.records)
            budget.limit = 1 << 20  # the server keeps serving, and the deployment is not blamed
            status, _, doc = await _ask(gw.port)
            assert status == 200 and doc["choices"][0]["message"]["content"]

    run("asyncio", main())
