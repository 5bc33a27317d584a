"""Per-deployment rate limits in the request path, the admin endpoint and the routing metrics.

Limits: a limited deployment is passed over for the next one without the upstream seeing the
request; when all are limited the request waits (bounded) for a slot, then gets ModelMux's
own 429 with ``retry-after``. ``GET /admin/providers`` needs ``[admin] key``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from tests.observability.helpers import request, scrape, value
from tests.routing.scripted import Clock, ask, error_of, served_by, upstreams
from tests.upstream import run

LIMITED = """
[[routing.group]]
name = "g"
deployments = [{{ provider = "p0", model = "m", {limits} }}, {{ provider = "p1", model = "m", priority = 1 }}]
"""


def test_a_deployment_at_its_rpm_is_passed_over_before_its_upstream_sees_it() -> None:
    async def main() -> None:
        async with upstreams(2, LIMITED.format(limits="rpm = 2")) as (fakes, gw):
            got = [await served_by(gw, model="g") for _ in range(4)]
            assert got == [("p0", "1"), ("p0", "1"), ("p1", "1"), ("p1", "1")]
            assert [len(f.requests) for f in fakes] == [2, 2]
            samples = await scrape(gw.port)
            assert value(samples, "modelmux_deployment_limited_total", deployment="p0/m") == 2

    run("asyncio", main())


ALONE = """
[routing]
queue_timeout_ms = {queue}

[[routing.group]]
name = "g"
deployments = [{{ provider = "p0", model = "m", {limits} }}]
"""


@pytest.mark.parametrize("stream", [False, True])
def test_all_limited_gives_a_429_in_openai_shape_with_retry_after(stream: bool) -> None:
    async def main() -> None:
        async with upstreams(1, ALONE.format(queue=0, limits="rpm = 1")) as (fakes, gw):
            assert await served_by(gw, stream, model="g") == ("p0", "1")
            exc = await error_of(gw, stream, model="g")
            assert isinstance(exc, openai.RateLimitError)
            assert exc.response.headers["retry-after"] == "60"  # one request a minute
            assert exc.response.headers["x-modelmux-attempts"] == "0"
            body = exc.response.json()["error"]
            assert (body["type"], body["code"]) == ("rate_limit_error", "rate_limit_exceeded")
            assert len(fakes[0].requests) == 1

    run("asyncio", main())


def test_a_request_over_the_tpm_capacity_is_refused_not_queued_forever() -> None:
    async def main() -> None:
        async with upstreams(1, ALONE.format(queue=50, limits="tpm = 10")) as (fakes, gw):
            exc = await error_of(gw, model="g", max_tokens=100)
            assert exc.status_code == 429 and not fakes[0].requests

    run("asyncio", main())


def test_max_concurrent_queues_briefly_then_serves() -> None:
    async def main() -> None:
        routing = ALONE.format(queue=5000, limits="max_concurrent = 1")
        async with upstreams(1, routing) as (fakes, gw):
            fakes[0].faults.append("hold")  # the first stream stops mid-way and stays open
            async with gw.client() as client:
                messages: Any = [{"role": "user", "content": "hi"}]
                stream: Any = await client.chat.completions.create(model="g", messages=messages,
                                                                   stream=True)
                first = await anext(aiter(stream))  # the slot is taken while this stream is open
                assert first.choices[0].delta.role == "assistant"
                second = asyncio.ensure_future(served_by(gw, model="g"))
                for _ in range(500):  # until the second request waits for the slot
                    if gw.app.dispatcher.queued:
                        break
                    await asyncio.sleep(0.01)
                assert gw.app.dispatcher.queued == 1 and len(fakes[0].requests) == 1
                await stream.close()  # the client leaves: its slot is freed
            assert await second == ("p0", "1")
            assert len(fakes[0].requests) == 2

    run("asyncio", main())


ADMIN = """
[admin]
key = "sesame"

[routing.breaker]
consecutive_failures = 1
cooldown = 30
"""


async def _get(gw: Any, path: str, key: str | None = None) -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    status, _, body = await request(gw.port, "GET", path, headers=headers)
    return status, json.loads(body)


def test_admin_providers_needs_the_key_and_shows_breaker_state() -> None:
    async def main() -> None:
        async with upstreams(2, ADMIN) as (fakes, gw):
            gw.app.router.clock = Clock()
            fakes[0].faults.append("500")
            assert await served_by(gw) == ("p1", "2")
            (missing, no), (wrong, bad) = [await _get(gw, "/admin/providers", key)
                                           for key in (None, "nope")]
            assert (missing, wrong) == (401, 403)
            assert no["error"]["type"] == "authentication_error"
            assert bad["error"]["type"] == "permission_error"
            status, doc = await _get(gw, "/admin/providers", "sesame")
            assert status == 200
            data = {p["name"]: p["deployments"] for p in doc["data"]}
            (p0,), (p1,) = data["p0"], data["p1"]
            assert (p0["id"], p0["breaker"]["state"], p0["breaker"]["open_for"]) == (
                "p0/m", "open", 30.0)
            assert p1["breaker"]["state"] == "closed" and p1["ewma_ttft_ms"] is not None
            samples = await scrape(gw.port)
            state = "modelmux_deployment_state"
            assert value(samples, state, deployment="p0/m", state="open") == 1
            assert value(samples, state, deployment="p0/m", state="closed") == 0
            assert value(samples, state, deployment="p1/m", state="closed") == 1
            assert value(samples, "modelmux_deployment_in_flight", deployment="p1/m") == 0
            assert value(samples, "modelmux_fallbacks_total") == 1


def test_admin_api_is_off_without_a_key() -> None:
    async def main() -> None:
        async with upstreams(1) as (_, gw):
            status, doc = await _get(gw, "/admin/providers", "anything")
            assert status == 404
            assert "[admin] key" in doc["error"]["message"]

    run("asyncio", main())


MAP = """
[models]
alias = "g"

[[routing.group]]
name = "g"
aliases = ["gee"]
deployments = [{ provider = "p1", model = "upstream-name" }]
"""


def test_v1_models_lists_public_names_and_groups_serve_their_upstream_model() -> None:
    async def main() -> None:
        async with upstreams(2, MAP) as (fakes, gw):
            listed = (await _get(gw, "/v1/models"))[1]["data"]
            assert [(m["id"], m["owned_by"]) for m in listed] == [
                ("alias", "p1"), ("g", "p1"), ("gee", "p1"), ("m", "p0")]
            for name in ("g", "gee", "alias"):
                _, headers = await ask(gw, model=name)
                assert headers["x-modelmux-provider"] == "p1"
            assert [r.json()["model"] for r in fakes[1].requests] == ["upstream-name"] * 3

    run("asyncio", main())
