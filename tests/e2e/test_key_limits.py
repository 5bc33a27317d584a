"""Per-key limits end to end, with the official SDKs: a key made through the admin API, its
rpm, tpm and max_parallel refused as 429 ``rate_limit_exceeded`` (OpenAI's shape on /v1,
Anthropic's on /v1/messages) with ``retry-after``, and the ``x-ratelimit-*`` headers on the
answers that reached the limit check; and two
``modelmux serve`` processes sharing one real Redis and one store, where a key's rpm holds
exactly across both."""

from __future__ import annotations

import asyncio
import http.client
import json
import urllib.request
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.e2e.proc import ServeProcess
from tests.providers.harness import gateway
from tests.state.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]

MASTER = "sk-master-e2e-0123456789abcdef"
MESSAGES: Any = [{"role": "user", "content": "hi"}]


def toml(db: Path, extra: str = "") -> str:
    return f"""
[server]
port = 0

[auth]
mode = "keys"
master_key = "{MASTER}"
sqlite_path = "{db}"
key_cache_seconds = 60

[[provider]]
name = "m"
type = "mock"
models = ["mock"]
chunks = 2
{extra}"""


def admin(base: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), method="POST",
        headers={"authorization": f"Bearer {MASTER}", "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 201
        return json.loads(answer.read())


def test_rpm_and_headers_on_both_doors(tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway(toml(tmp_path / "mm.db")) as gw:
            base = f"http://127.0.0.1:{gw.port}"
            made = await asyncio.to_thread(admin, base, "/admin/keys",
                                           {"name": "ci", "rpm": 3, "tpm": 100000})
            sdk = openai.AsyncOpenAI(base_url=base + "/v1", api_key=made["key"], max_retries=0)
            claude = anthropic.AsyncAnthropic(base_url=base, api_key=made["key"], max_retries=0)
            async with sdk, claude:
                first = await sdk.chat.completions.with_raw_response.create(
                    model="mock", messages=MESSAGES)
                assert first.headers["x-ratelimit-limit-requests"] == "3"
                assert first.headers["x-ratelimit-remaining-requests"] == "2"
                assert first.headers["x-ratelimit-reset-requests"] == "20s"
                assert first.headers["x-ratelimit-limit-tokens"] == "100000"
                assert int(first.headers["x-ratelimit-remaining-tokens"]) < 100000
                stream = await sdk.chat.completions.with_raw_response.create(
                    model="mock", messages=MESSAGES, stream=True)
                assert stream.headers["x-ratelimit-remaining-requests"] == "1"
                async for _ in stream.parse():
                    pass
                message = await claude.messages.with_raw_response.create(
                    model="mock", max_tokens=16, messages=MESSAGES)
                assert message.headers["x-ratelimit-remaining-requests"] == "0"
                try:
                    await sdk.chat.completions.create(model="mock", messages=MESSAGES)
                    raise AssertionError("a 4th request in the minute was served")
                except openai.RateLimitError as exc:
                    assert exc.code == "rate_limit_exceeded"
                    assert exc.body["code"] == "rate_limit_exceeded"  # type: ignore[index]
                    assert "requests per minute (limit 3)" in exc.message
                    assert int(exc.response.headers["retry-after"]) >= 1
                    assert exc.response.headers["x-ratelimit-remaining-requests"] == "0"
                try:
                    await claude.messages.create(model="mock", max_tokens=16, messages=MESSAGES)
                    raise AssertionError("a 5th request in the minute was served")
                except anthropic.RateLimitError as exc:
                    assert exc.body["type"] == "error"  # type: ignore[index]
                    assert exc.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
                    assert exc.response.headers["retry-after"]
                    assert exc.response.headers["x-ratelimit-limit-requests"] == "3"
                # another key is not held back, and an unlimited one gets no headers
                other = await asyncio.to_thread(admin, base, "/admin/keys", {"name": "free"})
                free = openai.AsyncOpenAI(base_url=base + "/v1", api_key=other["key"],
                                          max_retries=0)
                async with free:
                    answer = await free.chat.completions.with_raw_response.create(
                        model="mock", messages=MESSAGES)
                    assert "x-ratelimit-limit-requests" not in answer.headers

    asyncio.run(body())


def assert_refused_on_both_doors(sdk: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic,
                                 said: str) -> Any:
    """A chat call and a Messages call are both refused: 429 ``rate_limit_exceeded`` (OpenAI's
    shape) and ``rate_limit_error`` (Anthropic's), each with ``retry-after``."""

    async def check() -> None:
        try:
            await sdk.chat.completions.create(model="mock", messages=MESSAGES)
            raise AssertionError("the chat call was served")
        except openai.RateLimitError as exc:
            assert exc.status_code == 429 and exc.code == "rate_limit_exceeded"
            assert said in exc.message and int(exc.response.headers["retry-after"]) >= 1
        try:
            await claude.messages.create(model="mock", max_tokens=16, messages=MESSAGES)
            raise AssertionError("the Messages call was served")
        except anthropic.RateLimitError as exc:
            assert exc.status_code == 429
            assert exc.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
            assert said in exc.body["error"]["message"]  # type: ignore[index]
            assert int(exc.response.headers["retry-after"]) >= 1

    return check()


def test_tpm_is_refused_on_both_doors(tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway(toml(tmp_path / "mm.db")) as gw:
            base = f"http://127.0.0.1:{gw.port}"
            made = await asyncio.to_thread(admin, base, "/admin/keys", {"tpm": 10})
            sdk = openai.AsyncOpenAI(base_url=base + "/v1", api_key=made["key"],
                                     max_retries=0, timeout=10)
            claude = anthropic.AsyncAnthropic(base_url=base, api_key=made["key"],
                                              max_retries=0, timeout=10)
            async with sdk, claude:
                # larger than the whole tpm: let through on a full bucket, which its real
                # count then puts in debt
                first = await sdk.chat.completions.with_raw_response.create(
                    model="mock", messages=MESSAGES)
                assert first.headers["x-ratelimit-limit-tokens"] == "10"
                await assert_refused_on_both_doors(sdk, claude, "tokens per minute (limit 10")

    asyncio.run(body())


def test_max_parallel_is_refused_on_both_doors_while_a_stream_runs(tmp_path: Path) -> None:
    slow = toml(tmp_path / "mm.db").replace("chunks = 2", "chunks = 200\nchunk_delay_ms = 50")

    async def body() -> None:
        async with gateway(slow) as gw:
            base = f"http://127.0.0.1:{gw.port}"
            made = await asyncio.to_thread(admin, base, "/admin/keys", {"max_parallel": 1})
            sdk = openai.AsyncOpenAI(base_url=base + "/v1", api_key=made["key"],
                                     max_retries=0, timeout=10)
            claude = anthropic.AsyncAnthropic(base_url=base, api_key=made["key"],
                                              max_retries=0, timeout=10)
            async with sdk, claude:
                stream = await sdk.chat.completions.create(model="mock", messages=MESSAGES,
                                                           stream=True)
                chunks = aiter(stream)
                await asyncio.wait_for(anext(chunks), 10)  # admitted: it holds the slot
                await assert_refused_on_both_doors(sdk, claude,
                                                   "parallel requests (limit 1)")
                await stream.close()  # the client goes: its slot comes back
                for _ in range(200):  # the disconnect is noticed asynchronously; bounded
                    try:
                        done = await sdk.chat.completions.create(  # not streamed: no delay
                            model="mock", messages=MESSAGES)
                        break
                    except openai.RateLimitError:
                        await asyncio.sleep(0.05)
                else:
                    raise AssertionError("the slot never came back")
                assert done.choices

    asyncio.run(body())


def raw(port: int, method: str, path: str, key: str, body: str | None = None
        ) -> tuple[int, dict[str, str]]:
    """(status, x-ratelimit-* headers) of one plain HTTP call."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"authorization": f"Bearer {key}",
                                                       "content-type": "application/json"})
        answer = conn.getresponse()
        answer.read()
        return answer.status, {k: v for k, v in answer.getheaders()
                               if k.startswith("x-ratelimit-")}
    finally:
        conn.close()


def test_every_answer_to_a_limited_key_has_its_rate_limit_headers(tmp_path: Path) -> None:
    async def body() -> None:
        async with gateway(toml(tmp_path / "mm.db")) as gw:
            base = f"http://127.0.0.1:{gw.port}"
            made = await asyncio.to_thread(admin, base, "/admin/keys",
                                           {"rpm": 2, "tpm": 100000, "models": ["mock"]})
            key = made["key"]
            chat = json.dumps({"model": "mock", "messages": MESSAGES})
            before = [("GET", "/v1/models", None, 200),
                      ("POST", "/v1/chat/completions", "{bad", 400),
                      ("POST", "/v1/messages", '{"model": "mock"}', 400),
                      ("POST", "/v1/chat/completions",
                       json.dumps({"model": "elsewhere", "messages": MESSAGES}), 403),
                      ("POST", "/v1/messages/count_tokens",
                       json.dumps({"model": "mock", "messages": MESSAGES}), 200)]
            for method, path, sent, expected in before:  # no limit check: nothing counted
                status, headers = await asyncio.to_thread(raw, gw.port, method, path, key, sent)
                assert status == expected, (path, status)
                assert headers["x-ratelimit-limit-requests"] == "2", (path, headers)
                assert headers["x-ratelimit-remaining-requests"] == "2", (path, headers)
                assert headers["x-ratelimit-limit-tokens"] == "100000", (path, headers)
            for expected, left in ((200, "1"), (200, "0"), (429, "0")):  # counted at admission
                status, headers = await asyncio.to_thread(
                    raw, gw.port, "POST", "/v1/chat/completions", key, chat)
                assert status == expected and headers["x-ratelimit-limit-requests"] == "2"
                assert headers["x-ratelimit-remaining-requests"] == left, headers
            status, headers = await asyncio.to_thread(raw, gw.port, "GET", "/v1/models", key,
                                                      None)
            assert status == 200 and headers["x-ratelimit-remaining-requests"] == "0"
            free = await asyncio.to_thread(admin, base, "/admin/keys", {"models": ["mock"]})
            status, headers = await asyncio.to_thread(raw, gw.port, "GET", "/v1/models",
                                                      free["key"], None)
            assert status == 200 and headers == {}  # a key without limits: no headers

    asyncio.run(body())


def test_two_instances_share_a_key_rpm_exactly(tmp_path: Path,
                                               redis_server: RedisServer) -> None:
    config = tmp_path / "config.toml"
    config.write_text(toml(tmp_path / "mm.db", f"""
[state]
backend = "redis"
url = "{redis_server.url}"
key_prefix = "e2e:"
"""))
    hosts = [ServeProcess(["serve", "--config", str(config)], home=tmp_path / name)
             for name in ("a", "b")]
    try:
        made = admin(hosts[0].url, "/admin/keys", {"name": "shared", "rpm": 4})
        got = []
        for i in range(10):
            with openai.OpenAI(base_url=hosts[i % 2].url + "/v1", api_key=made["key"],
                               max_retries=0, timeout=10) as sdk:
                try:
                    sdk.chat.completions.create(model="mock", messages=MESSAGES)
                    got.append(200)
                except openai.RateLimitError as exc:
                    assert exc.code == "rate_limit_exceeded"
                    got.append(429)
        # 4 in all across both hosts (each alone would allow 4); a 5th only if the test ran
        # for over 15 s and the shared bucket refilled one
        assert 4 <= got.count(200) <= 5 and got[:4] == [200] * 4, got
    finally:
        for proc in hosts:
            assert proc.stop() == 0, "\n".join(proc.lines)


def test_the_gateways_headers_replace_the_upstreams(tmp_path: Path) -> None:
    from tests.fakes.openai import FakeOpenAI

    upstream_rate = [("x-ratelimit-limit-requests", "500"),
                     ("x-ratelimit-remaining-tokens", "149984")]

    async def body() -> None:
        async with FakeOpenAI(api_key="sk-test", answer_headers=upstream_rate) as up:
            provider = f"""
[[provider]]
name = "openai"
type = "openai"
api_key = "sk-test"
base_url = "{up.origin}/v1"
models = ["gpt-4o-mini"]
max_retries = 0
"""
            async with gateway(toml(tmp_path / "mm.db", provider)) as gw:
                base = f"http://127.0.0.1:{gw.port}"
                limited = await asyncio.to_thread(admin, base, "/admin/keys", {"rpm": 7})
                free = await asyncio.to_thread(admin, base, "/admin/keys", {"name": "free"})
                for made, requests, tokens in ((limited, ["7"], []),
                                               (free, ["500"], ["149984"])):
                    sdk = openai.AsyncOpenAI(base_url=base + "/v1", api_key=made["key"],
                                             max_retries=0)
                    async with sdk:
                        raw = await sdk.chat.completions.with_raw_response.create(
                            model="gpt-4o-mini", messages=MESSAGES)
                    assert raw.headers.get_list("x-ratelimit-limit-requests") == requests
                    assert raw.headers.get_list("x-ratelimit-remaining-tokens") == tokens

    asyncio.run(body())


def test_jwt_callers_through_both_doors(tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import time

    from tests.tenancy.test_jwt import AUDIENCE, EC_KEY, ISSUER, RSA_KEY, jwk, jwks, token

    keys = tmp_path / "jwks.json"
    keys.write_bytes(jwks(jwk(RSA_KEY, "k1"), jwk(EC_KEY, "e1")))
    table = f"""
[auth.jwt]
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
jwks_file = "{keys}"
"""

    async def body() -> None:
        async with gateway(toml(tmp_path / "mm.db", table)) as gw:
            base = f"http://127.0.0.1:{gw.port}"
            good = token(EC_KEY, "e1", "ES256", team="ml", role="user")
            async with openai.AsyncOpenAI(base_url=base + "/v1", api_key=good,
                                          max_retries=0) as sdk:
                done = await sdk.chat.completions.create(model="mock", messages=MESSAGES)
                assert done.choices[0].message.content
            expired = token(exp=int(time.time()) - 3600)
            async with openai.AsyncOpenAI(base_url=base + "/v1", api_key=expired,
                                          max_retries=0) as sdk:
                try:
                    await sdk.chat.completions.create(model="mock", messages=MESSAGES)
                    raise AssertionError("an expired JWT was served")
                except openai.AuthenticationError as exc:
                    assert exc.code == "invalid_api_key" and "expired" in exc.message
                    assert expired not in exc.message
            wrong = token(aud="someone-else")
            async with anthropic.AsyncAnthropic(base_url=base, api_key=wrong,
                                                max_retries=0) as claude:
                try:
                    await claude.messages.create(model="mock", max_tokens=16,
                                                 messages=MESSAGES)
                    raise AssertionError("a JWT for another audience was served")
                except anthropic.AuthenticationError as exc:
                    assert exc.body["error"]["type"] == "authentication_error"  # type: ignore[index]
                    assert "wrong audience" in exc.body["error"]["message"]  # type: ignore[index]
            seen.extend((good, expired, wrong))

    seen: list[str] = []
    caplog.set_level(logging.DEBUG)
    asyncio.run(body())
    assert "status=401" in caplog.text
    for credential in seen:  # no log line holds a token, nor its signature
        assert credential not in caplog.text and credential[-30:] not in caplog.text
