"""``anthropic`` and ``vertex`` end to end: the official SDK → the gateway → fake Claude servers.

One test body runs against both endpoint profiles (Vertex with a fake Google token endpoint
that verifies the service-account JWT): every byte split, tools, usage, error mapping, retries,
mid-stream overload, and the Vertex-only token behaviour (single-flight, refresh on 401).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import openai
import pytest

from tests.fakes.answers import TEXT, TOOLS, Answer
from tests.fakes.claude import FakeClaude
from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.http import SPLITS, Split, whole
from tests.providers.harness import (
    MESSAGES,
    TOOLS_PARAM,
    Gateway,
    collect,
    expected,
    from_completion,
    gateway,
    json_args,
    same,
    vertex_keys,
)
from tests.upstream import LOOPS, run

FLAVOURS = ["anthropic", "vertex"]


@dataclass
class Setup:
    gw: Gateway
    claude: FakeClaude
    oauth: FakeGoogleOAuth | None


@contextlib.asynccontextmanager
async def claude_gateway(flavour: str, *, answer: Answer = TEXT, split: Split = whole,
                         extra: str = "", retry_after: str = "0") -> AsyncIterator[Setup]:
    async with contextlib.AsyncExitStack() as stack:
        oauth = None
        if flavour == "vertex":
            oauth = await stack.enter_async_context(FakeGoogleOAuth())
        claude = await stack.enter_async_context(FakeClaude(
            flavour=flavour, answer=answer, split=split, retry_after=retry_after,
            token_ok=oauth.valid if oauth is not None else None))
        if oauth is None:
            table = f'type = "anthropic"\napi_key = "sk-ant-test"\nbase_url = "{claude.origin}"'
        else:
            table = (f'type = "vertex"\nbase_url = "{claude.origin}"\n'
                     + vertex_keys(oauth, "us-east5"))
        toml = f'[[provider]]\nname = "claude"\nmodels = ["sonnet"]\n{table}\n{extra}\n'
        gw = await stack.enter_async_context(gateway(toml))
        yield Setup(gw, claude, oauth)


@pytest.mark.parametrize("split", list(SPLITS))
@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("loop", LOOPS)
def test_sdk_sees_the_same_answer_in_every_split(loop: str, flavour: str, split: str) -> None:
    async def main() -> None:
        for answer in (TEXT, TOOLS):
            async with claude_gateway(flavour, answer=answer, split=SPLITS[split]) as s:
                async with s.gw.client() as client:
                    done = await client.chat.completions.create(
                        model="sonnet", messages=MESSAGES, tools=TOOLS_PARAM)
                    same(json_args(from_completion(done)), json_args(expected(answer, "sonnet")))
                    stream = await client.chat.completions.create(
                        model="sonnet", messages=MESSAGES, tools=TOOLS_PARAM, stream=True,
                        stream_options={"include_usage": True})
                    same(await collect(stream), expected(answer, "sonnet"))
                    plain = await client.chat.completions.create(
                        model="sonnet", messages=MESSAGES, stream=True)
                    same(await collect(plain), expected(answer, "sonnet", usage=False))
                body = s.claude.bodies[-1]
                assert body["system"] == "Be brief." and body["max_tokens"] == 4096

    run(loop, main(), timeout=60)


def test_vertex_request_shape() -> None:
    async def main() -> None:
        async with claude_gateway("vertex") as s, s.gw.client() as client:
            await client.chat.completions.create(model="claude/claude-3-5-haiku@20241022",
                                                 messages=MESSAGES, max_tokens=99)
            stream = await client.chat.completions.create(model="sonnet", messages=MESSAGES,
                                                          stream=True)
            await collect(stream)
            assert s.claude.paths == [
                {"project": "fake-project", "region": "us-east5",
                 "model": "claude-3-5-haiku@20241022", "method": "rawPredict"},
                {"project": "fake-project", "region": "us-east5", "model": "sonnet",
                 "method": "streamRawPredict"},
            ]
            first, second = s.claude.bodies
            assert "model" not in first and first["anthropic_version"] == "vertex-2023-10-16"
            assert first["max_tokens"] == 99 and second["stream"] is True
            assert s.claude.requests[0].headers["authorization"] == "Bearer ya29.fake-1"
            assert s.oauth is not None and s.oauth.rejections == []

    run("asyncio", main())


def test_anthropic_request_shape() -> None:
    async def main() -> None:
        async with claude_gateway("anthropic") as s, s.gw.client() as client:
            await client.chat.completions.create(model="sonnet", messages=MESSAGES)
            headers = s.claude.requests[0].headers
            assert headers["x-api-key"] == "sk-ant-test"
            assert headers["anthropic-version"] == "2023-06-01"
            assert s.claude.bodies[0]["model"] == "sonnet"

    run("asyncio", main())


ERRORS = [
    # fault (x3), SDK exception, status, code
    ("429", openai.RateLimitError, 429, "rate_limit_exceeded"),
    ("500", openai.InternalServerError, 502, "upstream_server_error"),
    ("529", openai.InternalServerError, 503, "overloaded"),
    ("error_first", openai.InternalServerError, 503, "overloaded"),
]


@pytest.mark.parametrize(("fault", "exc", "status", "code"), ERRORS, ids=[e[0] for e in ERRORS])
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_retryable_errors_after_the_last_retry(flavour: str, fault: str, exc: type, status: int,
                                               code: str) -> None:
    async def main() -> None:
        async with claude_gateway(flavour, extra="max_retries = 1", retry_after="0") as s:
            s.claude.faults.extend([fault] * 2)
            async with s.gw.client() as client:
                with pytest.raises(exc) as caught:
                    await collect(await client.chat.completions.create(
                        model="sonnet", messages=MESSAGES, stream=True))
            assert caught.value.status_code == status
            assert caught.value.code == code  # type: ignore[attr-defined]
            assert len(s.claude.requests) == 2
            if fault == "429":
                assert caught.value.response.headers["retry-after"] == "0"

    run("asyncio", main())


@pytest.mark.parametrize("faults", [["529", "429"], ["error_first", "500"], ["reset_early"]],
                         ids=["529-429", "error_first-500", "reset_early"])
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_retries_recover_before_the_first_byte(flavour: str, faults: list[str]) -> None:
    async def main() -> None:
        async with claude_gateway(flavour, answer=TOOLS) as s:
            s.claude.faults.extend(faults)
            async with s.gw.client() as client:
                seen = await collect(await client.chat.completions.create(
                    model="sonnet", messages=MESSAGES, stream=True))
            same(seen, expected(TOOLS, "sonnet", usage=False))
            assert len(s.claude.requests) == len(faults) + 1

    run("asyncio", main())


@pytest.mark.parametrize("fault", ["overloaded_event", "reset"])
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_mid_stream_failure_reaches_the_sdk_as_an_error(flavour: str, fault: str) -> None:
    async def main() -> None:
        async with claude_gateway(flavour) as s:
            s.claude.faults.append(fault)
            async with s.gw.client() as client:
                stream = await client.chat.completions.create(model="sonnet", messages=MESSAGES,
                                                              stream=True)
                with pytest.raises(openai.APIError) as caught:
                    await collect(stream)
            if fault == "overloaded_event":
                assert caught.value.code == "overloaded"  # type: ignore[attr-defined]
            assert len(s.claude.requests) == 1

    run("asyncio", main())


def test_anthropic_key_refused_is_the_proxy_credentials() -> None:
    async def main() -> None:
        async with claude_gateway("anthropic") as s:
            s.claude.faults.append("401")
            async with s.gw.client() as client:
                with pytest.raises(openai.InternalServerError) as caught:
                    await client.chat.completions.create(model="sonnet", messages=MESSAGES)
            assert caught.value.status_code == 502
            assert caught.value.code == "upstream_auth_failed"  # type: ignore[attr-defined]
            assert "refused ModelMux's own credentials" in caught.value.message
            assert len(s.claude.requests) == 1

    run("asyncio", main())


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_request_claude_cannot_serve_is_400_naming_the_provider_without_upstream_call(
        flavour: str) -> None:
    async def main() -> None:
        async with claude_gateway(flavour) as s, s.gw.client() as client:
            for stream in (False, True):
                with pytest.raises(openai.BadRequestError) as caught:
                    await client.chat.completions.create(model="sonnet", messages=MESSAGES, n=2,
                                                         stream=stream)
                assert caught.value.param == "n"  # type: ignore[attr-defined]
                assert caught.value.type == "invalid_request_error"  # type: ignore[attr-defined]
                assert f"provider 'claude' ({flavour})" in caught.value.message
            assert s.claude.requests == []

    run("asyncio", main())


def test_vertex_concurrent_requests_fetch_one_token() -> None:
    async def main() -> None:
        async with claude_gateway("vertex") as s, s.gw.client() as client:
            assert s.oauth is not None
            s.oauth.gate = asyncio.Event()
            calls = [asyncio.create_task(client.chat.completions.create(
                model="sonnet", messages=MESSAGES)) for _ in range(12)]
            await s.oauth.wait_for(lambda: len(s.oauth.requests) == 1)  # type: ignore[union-attr]
            s.oauth.gate.set()
            answers = await asyncio.gather(*calls)
            assert {a.choices[0].message.content for a in answers} == {TEXT.text}
            assert s.oauth.issued == ["ya29.fake-1"]

    run("asyncio", main())


def test_vertex_refreshes_the_token_once_on_401() -> None:
    async def main() -> None:
        async with claude_gateway("vertex") as s, s.gw.client() as client:
            oauth = s.oauth
            assert oauth is not None
            await client.chat.completions.create(model="sonnet", messages=MESSAGES)
            oauth.revoke_all()  # the cached token is now refused upstream
            done = await client.chat.completions.create(model="sonnet", messages=MESSAGES)
            assert done.choices[0].message.content == TEXT.text
            assert oauth.issued == ["ya29.fake-1", "ya29.fake-2"]
            assert [r.headers["authorization"] for r in s.claude.requests] == [
                "Bearer ya29.fake-1", "Bearer ya29.fake-1", "Bearer ya29.fake-2"]
            s.claude.token_ok = lambda token: False  # refused even after a refresh: give up
            with pytest.raises(openai.InternalServerError) as caught:
                await client.chat.completions.create(model="sonnet", messages=MESSAGES)
            assert caught.value.code == "upstream_auth_failed"  # type: ignore[attr-defined]
            assert len(oauth.issued) == 3 and len(s.claude.requests) == 5

    run("asyncio", main())
