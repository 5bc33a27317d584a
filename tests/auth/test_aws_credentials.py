"""The AWS credential chain: config, environment, shared files, container endpoint, IMDSv2
(loopback fakes), refresh ahead of expiry off the request path, and a clear error with none."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmux.auth.aws import AwsCredentialSource
from modelmux.auth.sigv4 import AwsCredentials
from modelmux.errors import UpstreamAuthFailed
from modelmux.upstream import ConnectionPool
from tests.fakes.aws_metadata import FakeCredentialEndpoints
from tests.upstream import run

NO_IMDS = {"AWS_EC2_METADATA_DISABLED": "true"}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def resolve(env: dict[str, str], static: AwsCredentials | None = None) -> tuple[
        AwsCredentials, str]:
    pool = ConnectionPool()
    source = AwsCredentialSource(pool, label="t", static=static, env=env)
    try:
        return await source.credentials(), source.source
    finally:
        await source.aclose()
        await pool.aclose()


def test_config_beats_environment(tmp_path: Path) -> None:
    static = AwsCredentials("AKIDCONFIG", "s")
    env = {"HOME": str(tmp_path), "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "e"}
    assert run("asyncio", resolve(env, static)) == (static, "config")


def test_environment(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "e",
           "AWS_SESSION_TOKEN": "tok", **NO_IMDS}
    assert run("asyncio", resolve(env)) == (AwsCredentials("AKIDENV", "e", "tok"), "environment")


def test_shared_credentials_file_and_config_profile(tmp_path: Path) -> None:
    aws = tmp_path / ".aws"
    aws.mkdir()
    (aws / "credentials").write_text("[default]\naws_access_key_id = AKIDDEF\n"
                                     "aws_secret_access_key = d\n[work]\naws_access_key_id = "
                                     "AKIDWORK\naws_secret_access_key = w\naws_session_token = t\n")
    (aws / "config").write_text("[profile cfg]\naws_access_key_id = AKIDCFG\n"
                                "aws_secret_access_key = c\n")
    base = {"HOME": str(tmp_path), **NO_IMDS}
    assert run("asyncio", resolve(base))[0] == AwsCredentials("AKIDDEF", "d")
    assert run("asyncio", resolve({**base, "AWS_PROFILE": "work"}))[0] == AwsCredentials(
        "AKIDWORK", "w", "t")
    assert run("asyncio", resolve({**base, "AWS_PROFILE": "cfg"})) == (
        AwsCredentials("AKIDCFG", "c"), "shared files")
    other = tmp_path / "elsewhere"
    other.write_text("[default]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = o\n")
    assert run("asyncio", resolve({**base, "AWS_SHARED_CREDENTIALS_FILE": str(other)}))[0] == (
        AwsCredentials("AKIDOTHER", "o"))


def test_container_endpoint(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeCredentialEndpoints(expires=4_000_000_000) as fake:
            token_file = tmp_path / "token"
            token_file.write_text("container-secret\n")
            env = {"HOME": str(tmp_path), **NO_IMDS,
                   "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{fake.origin}/container/creds",
                   "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file)}
            creds, source = await resolve(env)
            assert (creds.access_key_id, creds.session_token, source) == (
                "ASIAFAKE000000000001", "token-1", "container")
            assert creds.expires_at == 4_000_000_000
            env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = str(tmp_path / "missing")
            env["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "wrong"
            with pytest.raises(UpstreamAuthFailed, match="TOKEN_FILE"):
                await resolve(env)
            del env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]
            with pytest.raises(UpstreamAuthFailed, match="HTTP 401"):
                await resolve(env)

    run("asyncio", main())


def test_imds_v2_and_refresh_ahead_of_expiry(tmp_path: Path) -> None:
    async def main() -> None:
        clock = Clock(1_000_000.0)
        async with FakeCredentialEndpoints(expires=clock.now + 3600) as fake:
            pool = ConnectionPool()
            env = {"HOME": str(tmp_path), "AWS_EC2_METADATA_SERVICE_ENDPOINT": fake.origin}
            source = AwsCredentialSource(pool, label="t", env=env, margin=300, clock=clock)
            try:
                first = await source.credentials()
                assert (first.access_key_id, source.source) == ("ASIAFAKE000000000001",
                                                                "instance metadata")
                assert [r.method for r in fake.requests] == ["PUT", "GET", "GET"]
                clock.now += 3000  # still valid, not yet due
                assert await source.credentials() is first
                assert fake.issued == 1
                clock.now += 400  # inside the margin: the old keys now, a refresh behind
                fake.expires = clock.now + 3600
                assert await source.credentials() is first
                await fake.wait_for(lambda: fake.issued == 2)
                task = source._inflight
                if task is not None:
                    await task
                second = await source.credentials()
                assert second.access_key_id == "ASIAFAKE000000000002"
                assert source.invalidate(second) and await source.credentials() != second
            finally:
                await source.aclose()
                await pool.aclose()

    run("asyncio", main())


def test_no_credentials_anywhere(tmp_path: Path) -> None:
    with pytest.raises(UpstreamAuthFailed, match="no AWS credentials"):
        run("asyncio", resolve({"HOME": str(tmp_path), **NO_IMDS}))


def test_web_identity_token_through_sts(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeCredentialEndpoints(expires=4_000_000_000) as fake:
            token = tmp_path / "oidc"
            token.write_text("oidc-token\n")
            env = {"HOME": str(tmp_path), **NO_IMDS, "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
                   "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/gw",
                   "AWS_ENDPOINT_URL_STS": fake.origin}
            creds, source = await resolve(env)
            assert (creds.access_key_id, creds.secret_access_key, creds.session_token,
                    creds.expires_at, source) == ("ASIAFAKE000000000001", "secret-1", "token-1",
                                                  4_000_000_000, "web identity")
            form = fake.requests[0].body.decode()
            assert "Action=AssumeRoleWithWebIdentity" in form and "RoleSessionName=" in form
            token.write_text("stale")
            with pytest.raises(UpstreamAuthFailed, match="HTTP 400: Incorrect token"):
                await resolve(env)

    run("asyncio", main())
