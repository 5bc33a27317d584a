"""``GoogleTokenSource`` with real google-auth against a fake token endpoint that checks JWTs.

Covers credentials loading (file, inline JSON, base64 env), caching, refresh ahead of expiry,
single-flight under concurrency, refresh in a worker thread, invalidation and error mapping.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from modelmux.auth.google import (
    CredentialsError,
    GoogleTokenSource,
    credentials_from_info,
    load_credentials,
)
from modelmux.errors import UpstreamAuthFailed
from modelmux.upstream.errors import UpstreamConnectError
from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.upstream import on_loops, refused_port, run


def source_for(oauth: FakeGoogleOAuth, **kwargs: Any) -> GoogleTokenSource:
    creds = credentials_from_info(oauth.service_account_info(), "test")
    return GoogleTokenSource(creds, **kwargs)


@on_loops
def test_token_is_fetched_once_and_cached(loop: str) -> None:
    async def main() -> None:
        async with FakeGoogleOAuth() as oauth:
            tokens = source_for(oauth)
            try:
                first = await tokens.token()
                assert first == "ya29.fake-1" and oauth.rejections == []
                assert await tokens.token() == first
                assert oauth.issued == ["ya29.fake-1"] and tokens.refreshes == 1
            finally:
                await tokens.aclose()

    run(loop, main())


@on_loops
def test_concurrent_callers_share_one_refresh(loop: str) -> None:
    async def main() -> None:
        async with FakeGoogleOAuth() as oauth:
            oauth.gate = asyncio.Event()
            tokens = source_for(oauth)
            try:
                waiters = [asyncio.create_task(tokens.token()) for _ in range(50)]
                await oauth.wait_for(lambda: len(oauth.requests) == 1)
                waiters.append(asyncio.create_task(tokens.token()))  # joins the refresh in flight
                oauth.gate.set()
                assert set(await asyncio.gather(*waiters)) == {"ya29.fake-1"}
                assert len(oauth.requests) == 1 and tokens.refreshes == 1
            finally:
                oauth.gate.set()
                await tokens.aclose()

    run(loop, main())


def test_a_cancelled_waiter_does_not_cancel_the_refresh() -> None:
    async def main() -> None:
        async with FakeGoogleOAuth() as oauth:
            oauth.gate = asyncio.Event()
            tokens = source_for(oauth)
            try:
                leaver = asyncio.create_task(tokens.token())
                stayer = asyncio.create_task(tokens.token())
                await oauth.wait_for(lambda: len(oauth.requests) == 1)
                leaver.cancel()
                oauth.gate.set()
                assert await stayer == "ya29.fake-1"
                assert leaver.cancelled()
            finally:
                oauth.gate.set()
                await tokens.aclose()

    run("asyncio", main())


def test_aclose_cancels_a_refresh_and_lets_its_thread_finish_first() -> None:
    async def main() -> None:
        async with FakeGoogleOAuth() as oauth:
            oauth.gate = asyncio.Event()
            tokens = source_for(oauth)
            waiter = asyncio.create_task(tokens.token())
            await oauth.wait_for(lambda: len(oauth.requests) == 1)
            closing = asyncio.create_task(tokens.aclose())
            with pytest.raises(asyncio.CancelledError):
                await waiter  # cancelled at once, while the worker thread still waits
            assert not closing.done()  # the thread's HTTP session stays open under it
            oauth.gate.set()
            await closing
            assert tokens._session is None and tokens.refreshes == 0

    run("asyncio", main())


def test_refresh_runs_in_a_worker_thread_not_on_the_loop() -> None:
    async def main() -> None:
        async with FakeGoogleOAuth() as oauth:
            creds = credentials_from_info(oauth.service_account_info(), "test")
            seen: list[int] = []
            refresh = creds.refresh

            def recording(request: Any) -> None:
                seen.append(threading.get_ident())
                refresh(request)

            creds.refresh = recording  # type: ignore[method-assign]
            tokens = GoogleTokenSource(creds)
            try:
                await tokens.token()
            finally:
                await tokens.aclose()
            assert seen and threading.get_ident() not in seen

    run("asyncio", main())


class Offset:
    """Wall-clock time moved by ``by`` seconds: token lifetimes pass without waiting."""

    def __init__(self) -> None:
        self.by = 0.0

    def __call__(self) -> float:
        return time.time() + self.by


@contextlib.asynccontextmanager
async def clocked(expires_in: int) -> AsyncIterator[tuple[FakeGoogleOAuth, GoogleTokenSource,
                                                          Offset]]:
    async with FakeGoogleOAuth(expires_in=expires_in) as oauth:
        clock = Offset()
        tokens = source_for(oauth, clock=clock)
        try:
            assert await tokens.token() == "ya29.fake-1"
            yield oauth, tokens, clock
        finally:
            if oauth.gate is not None:
                oauth.gate.set()
            await tokens.aclose()


def test_token_is_refreshed_before_it_expires() -> None:
    async def main() -> None:
        async with clocked(3600) as (oauth, tokens, clock):
            clock.by = 3600 - 300 - 30  # 30 s before the 5-minute margin: still cached
            assert await tokens.token() == "ya29.fake-1"
            oauth.gate = asyncio.Event()
            clock.by = 3600 - 300 + 30  # inside the margin: still served, refreshed behind
            assert await tokens.token() == "ya29.fake-1"
            await oauth.wait_for(lambda: len(oauth.requests) == 2)
            oauth.gate.set()
            clock.by = 3600 + 30  # expired: joins the refresh already in flight
            assert await tokens.token() == "ya29.fake-2"
            assert len(oauth.issued) == 2 and tokens.refreshes == 2

    run("asyncio", main())


def test_short_lived_token_uses_half_its_lifetime_as_margin() -> None:
    async def main() -> None:
        async with clocked(120) as (oauth, tokens, clock):
            clock.by = 50
            assert await tokens.token() == "ya29.fake-1" and len(oauth.requests) == 1
            clock.by = 70
            assert await tokens.token() == "ya29.fake-1"
            clock.by = 130
            assert await tokens.token() == "ya29.fake-2" and len(oauth.issued) == 2

    run("asyncio", main())


def test_an_expired_token_is_never_served() -> None:
    async def main() -> None:
        async with clocked(3600) as (_, tokens, clock):
            clock.by = 3600 + 30  # past expiry: the request waits for a new token
            assert await tokens.token() == "ya29.fake-2" and tokens.refreshes == 2

    run("asyncio", main())


def test_invalidate_forces_a_refresh_but_not_of_a_newer_token() -> None:
    async def main() -> None:
        async with FakeGoogleOAuth() as oauth:
            tokens = source_for(oauth)
            try:
                old = await tokens.token()
                tokens.invalidate(old)
                new = await tokens.token()
                assert new != old
                tokens.invalidate(old)  # a late 401 for the old token must not drop the new one
                assert await tokens.token() == new and len(oauth.issued) == 2
            finally:
                await tokens.aclose()

    run("asyncio", main())


def test_a_key_google_does_not_know_is_upstream_auth_failed() -> None:
    async def main() -> None:
        async with FakeGoogleOAuth() as oauth:
            other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            creds = credentials_from_info(oauth.service_account_info(key=other), "test")
            tokens = GoogleTokenSource(creds, label="provider 'vertex'")
            try:
                with pytest.raises(UpstreamAuthFailed, match="Invalid JWT Signature") as info:
                    await tokens.token()
                assert info.value.status == 502 and info.value.code == "upstream_auth_failed"
                assert oauth.rejections == ["Invalid JWT Signature."]
            finally:
                await tokens.aclose()

    run("asyncio", main())


def test_unreachable_token_endpoint_is_a_connect_error() -> None:
    async def main() -> None:
        async with FakeGoogleOAuth() as oauth:
            info = oauth.service_account_info()
        info["token_uri"] = f"http://127.0.0.1:{refused_port()}/token"
        tokens = GoogleTokenSource(credentials_from_info(info, "test"))
        try:
            with pytest.raises(UpstreamConnectError) as caught:
                await tokens.token()
            assert caught.value.code == "upstream_auth_unreachable"
        finally:
            await tokens.aclose()

    run("asyncio", main())


def _info() -> dict[str, Any]:
    async def make() -> dict[str, Any]:
        async with FakeGoogleOAuth() as oauth:
            return oauth.service_account_info()

    return asyncio.run(make())


def test_load_credentials_from_each_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = _info()
    text = json.dumps(info)
    path = tmp_path / "key.json"
    path.write_text(text)
    monkeypatch.setenv("MM_TEST_SA", base64.b64encode(text.encode()).decode())
    for creds in (load_credentials(file=str(path)), load_credentials(json_text=text),
                  load_credentials(env="MM_TEST_SA")):
        assert creds is not None
        assert creds.service_account_email == info["client_email"]  # type: ignore[attr-defined]
        scopes = creds.scopes  # type: ignore[attr-defined]
        assert scopes == ["https://www.googleapis.com/auth/cloud-platform"]
    assert load_credentials() is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"file": "/nonexistent/key.json"}, "cannot read"),
        ({"json_text": "{not json"}, "not JSON"),
        ({"json_text": "[1, 2]"}, "expected a JSON object"),
        ({"json_text": '{"type": "service_account"}'}, "not usable Google credentials"),
        ({"env": "MM_TEST_UNSET_VARIABLE"}, "MM_TEST_UNSET_VARIABLE is not set"),
        ({"env": "MM_TEST_BAD_B64"}, "not base64"),
    ],
)
def test_load_credentials_errors_name_the_source(
    kwargs: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MM_TEST_UNSET_VARIABLE", raising=False)
    monkeypatch.setenv("MM_TEST_BAD_B64", "@@not base64@@")
    with pytest.raises(CredentialsError, match=message):
        load_credentials(**kwargs)  # type: ignore[arg-type]
