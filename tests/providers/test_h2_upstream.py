"""Every upstream provider type over HTTP/2: the official SDK → the gateway → a fake over h2.

openai_compatible (the relay path) and anthropic/vertex (translated), streaming and not, with
``http2 = true`` (h2c prior knowledge) and by ALPN over TLS with a test CA; concurrent requests
share one upstream connection; the SDK may itself speak HTTP/2 to the gateway (on uvloop).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import openai
import pytest

from tests.fakes.answers import TEXT, TOOLS
from tests.fakes.claude import FakeClaude
from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.h2 import H2Fake
from tests.fakes.openai import FakeOpenAI
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
from tests.upstream import run

FLAVOURS = ["openai", "anthropic", "vertex"]


@contextlib.asynccontextmanager
async def h2_gateway(flavour: str, *, http2: str = "true", tls: Path | None = None,
                     answer: object = TEXT) -> AsyncIterator[tuple[Gateway, H2Fake]]:
    async with contextlib.AsyncExitStack() as stack:
        if flavour == "openai":
            app = FakeOpenAI(api_key="sk-test", answer=answer)  # type: ignore[arg-type]
        else:
            oauth = None
            if flavour == "vertex":
                oauth = await stack.enter_async_context(FakeGoogleOAuth())
            app = FakeClaude(flavour=flavour, answer=answer,  # type: ignore[arg-type]
                             token_ok=oauth.valid if oauth is not None else None)
        fake = await stack.enter_async_context(H2Fake(app, tls=tls))
        if flavour == "openai":
            table = (f'type = "openai_compatible"\napi_key = "sk-test"\n'
                     f'base_url = "{fake.base_url}/v1"')
        elif flavour == "anthropic":
            table = f'type = "anthropic"\napi_key = "sk-ant-test"\nbase_url = "{fake.base_url}"'
        else:
            assert oauth is not None
            table = f'type = "vertex"\nbase_url = "{fake.base_url}"\n' + vertex_keys(oauth, "us-east5")
        line = f"http2 = {http2}\n" if http2 else ""
        toml = f'[[provider]]\nname = "up"\nmodels = ["m"]\n{table}\n{line}'
        gw = await stack.enter_async_context(gateway(toml))
        yield gw, fake


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_provider_type_streams_and_completes_over_h2c(flavour: str) -> None:
    async def main() -> None:
        for answer in (TEXT, TOOLS):
            async with h2_gateway(flavour, answer=answer) as (gw, fake), gw.client() as client:
                done = await client.chat.completions.create(
                    model="m", messages=MESSAGES, tools=TOOLS_PARAM)
                want = json_args(expected(answer, "m"))
                same(json_args(from_completion(done)), want)
                stream = await client.chat.completions.create(
                    model="m", messages=MESSAGES, tools=TOOLS_PARAM, stream=True,
                    stream_options={"include_usage": True})
                same(json_args(await collect(stream)), want)
                streams = [await client.chat.completions.create(
                    model="m", messages=MESSAGES, stream=True) for _ in range(4)]
                seen = await asyncio.gather(*[collect(s) for s in streams])
                assert all(s.text == answer.text for s in seen)
                assert fake.connections == 1 and fake.h1_connections == 0
                assert fake.resets == 0

    run("asyncio", main(), timeout=30)


def test_alpn_over_tls_picks_h2_for_a_provider_without_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        async with h2_gateway("openai", http2="", tls=tmp_path) as (gw, fake):
            async with gw.client() as client:
                done = await client.chat.completions.create(model="m", messages=MESSAGES)
                assert done.choices[0].message.content == TEXT.text
                stream = await client.chat.completions.create(model="m", messages=MESSAGES,
                                                              stream=True)
                assert (await collect(stream)).text == TEXT.text
            assert (fake.connections, fake.h1_connections) == (1, 0)

    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # written by the fake
    run("asyncio", main(), timeout=30)


def test_http2_false_keeps_http11_over_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        async with h2_gateway("anthropic", http2="false", tls=tmp_path) as (gw, fake):
            async with gw.client() as client:
                stream = await client.chat.completions.create(model="m", messages=MESSAGES,
                                                              stream=True)
                assert (await collect(stream)).text == TEXT.text
            assert (fake.connections, fake.h1_connections) == (0, 1)

    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    run("asyncio", main(), timeout=30)


def test_sdk_over_h2c_to_the_gateway_and_h2c_to_the_upstream() -> None:
    async def main() -> None:
        async with h2_gateway("openai") as (gw, fake):
            http = httpx2.AsyncClient(http1=False, http2=True, timeout=10)
            async with openai.AsyncOpenAI(base_url=gw.base_url, api_key="x", max_retries=0,
                                          http_client=http) as client:
                streams = [await client.chat.completions.create(
                    model="m", messages=MESSAGES, stream=True) for _ in range(3)]
                seen = await asyncio.gather(*[collect(s) for s in streams])
                assert [s.text for s in seen] == [TEXT.text] * 3
            assert fake.connections == 1

    run("uvloop", main(), timeout=30)  # the loop `modelmux serve` runs on


def test_reset_stream_before_the_first_byte_is_retried_after_it_is_an_error() -> None:
    async def main() -> None:
        async with h2_gateway("openai") as (gw, fake), gw.client() as client:
            fake.app.faults.append("reset_early")  # type: ignore[attr-defined]
            stream = await client.chat.completions.create(model="m", messages=MESSAGES,
                                                          stream=True)
            assert (await collect(stream)).text == TEXT.text
            assert len(fake.app.requests) == 2 and fake.connections == 1
            fake.app.faults.append("reset")  # type: ignore[attr-defined]
            stream = await client.chat.completions.create(model="m", messages=MESSAGES,
                                                          stream=True)
            with pytest.raises(openai.APIError):
                await collect(stream)
            assert len(fake.app.requests) == 3
            done = await client.chat.completions.create(model="m", messages=MESSAGES)
            assert done.choices[0].message.content == TEXT.text
            assert fake.connections == 1  # a reset stream leaves the connection in use

    run("asyncio", main(), timeout=30)
