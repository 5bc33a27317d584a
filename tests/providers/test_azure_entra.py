"""Azure OpenAI with ``entra_id = true``: tokens from a fake Entra ID (client credentials, and
managed identity), refreshed ahead of expiry without holding up requests, re-fetched after a
401, and a refused secret reported without the secret."""

from __future__ import annotations

import pytest

from modelmux.providers.azure import AzureProvider
from tests.fakes.azure import FakeAzure
from tests.fakes.entra import CLIENT_ID, IDENTITY_HEADER, SECRET, TENANT, FakeEntra
from tests.providers.harness import MESSAGES, gateway
from tests.upstream import run


def config(az: FakeAzure, entra: FakeEntra, secret: str = SECRET, creds: bool = True) -> str:
    table = f"""
[[provider]]
name = "azure"
type = "azure"
base_url = "{az.origin}"
api_version = "2024-10-21"
models = ["gpt-4o-prod"]
entra_id = true
authority_host = "{entra.origin}"
max_retries = 0
"""
    if creds:
        table += f'tenant_id = "{TENANT}"\nclient_id = "{CLIENT_ID}"\nclient_secret = "{secret}"\n'
    return table


def test_client_credentials_tokens_refresh_ahead_and_after_a_401() -> None:
    async def main() -> None:
        async with FakeEntra() as entra, FakeAzure(tokens={"tok-1", "tok-2", "tok-3"}) as az:
            async with gateway(config(az, entra)) as gw, gw.client() as client:
                provider = next(p for p in gw.app.providers if isinstance(p, AzureProvider))
                assert provider.tokens is not None
                now = [1_000_000.0]
                provider.tokens.clock = lambda: now[0]

                async def ask() -> str:
                    done = await client.chat.completions.create(model="gpt-4o-prod",
                                                                messages=MESSAGES)
                    assert done.choices[0].message.content
                    return az.requests[-1].headers["authorization"]

                assert await ask() == "Bearer tok-1"
                assert await ask() == "Bearer tok-1" and entra.issued == ["tok-1"]
                now[0] += 3600 - 100  # inside the refresh margin, still valid
                assert await ask() == "Bearer tok-1"  # not held up by the refresh
                await entra.wait_for(lambda: len(entra.issued) == 2)
                await entra.wait_for(lambda: provider.tokens is not None
                                     and provider.tokens.refreshes == 2)
                assert await ask() == "Bearer tok-2"
                az.tokens = {"tok-3"}  # tok-2 revoked: the 401 fetches a new one, once
                assert await ask() == "Bearer tok-3"
                assert entra.issued == ["tok-1", "tok-2", "tok-3"]

    run("asyncio", main())


def test_managed_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        async with FakeEntra() as entra, FakeAzure(tokens={"tok-1"}) as az:
            monkeypatch.setenv("IDENTITY_ENDPOINT", f"{entra.origin}/msi/token")
            monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_HEADER)
            async with gateway(config(az, entra, creds=False)) as gw, gw.client() as client:
                done = await client.chat.completions.create(model="gpt-4o-prod",
                                                            messages=MESSAGES)
                assert done.choices[0].message.content
                assert az.requests[-1].headers["authorization"] == "Bearer tok-1"

    run("asyncio", main())


def test_a_refused_secret_is_an_auth_error_without_the_secret() -> None:
    import openai

    async def main() -> None:
        async with FakeEntra() as entra, FakeAzure(tokens={"tok-1"}) as az:
            wrong = "wrong-secret-0xDONTLOG"
            async with gateway(config(az, entra, secret=wrong)) as gw, gw.client() as client:
                with pytest.raises(openai.APIStatusError) as caught:
                    await client.chat.completions.create(model="gpt-4o-prod",
                                                         messages=MESSAGES)
                assert caught.value.body["code"] == "upstream_auth_failed"
                assert "AADSTS7000215" in caught.value.body["message"]
                assert wrong not in caught.value.body["message"]
                assert az.requests == []

    run("asyncio", main())
