"""``JwtVerifier`` with keys made here, a JWKS file and a real loopback JWKS server: good tokens
map to identities; expired, early, foreign, unsigned and unknown-key tokens are refused with a
401 that never holds the token; a new kid is fetched once, and unknown kids cannot force
fetch storms."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from modelmux.config.features import JwtConfig
from modelmux.config.problems import ConfigError
from modelmux.errors import AuthenticationFailed
from modelmux.tenancy.jwt import REFETCH_SECONDS, JwtVerifier, role_of
from modelmux.tenancy.records import Identity, Team, User
from tests.fakes.http import FakeServer, Reply, Request, json_reply

ISSUER = "https://login.example.test/"
AUDIENCE = "modelmux"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_KEY_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def jwk(private: Any, kid: str, **extra: str) -> dict[str, Any]:
    public = private.public_key()
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(private, rsa.RSAPrivateKey) \
        else jwt.algorithms.ECAlgorithm
    data = json.loads(algorithm.to_jwk(public))
    return {**data, "kid": kid, "use": "sig", **extra}


def jwks(*keys: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


def token(private: Any = RSA_KEY, kid: str | None = "k1", alg: str = "RS256",
          **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 3600,
            **claims}
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, private, algorithm=alg, headers={"kid": kid} if kid else None)


def config(**kw: Any) -> JwtConfig:
    return JwtConfig(issuer=ISSUER, audience=AUDIENCE, **kw)


class FakeJwks(FakeServer):
    """Serves ``document`` at ``/jwks.json`` and counts the fetches."""

    def __init__(self, document: bytes) -> None:
        super().__init__()
        self.document = document
        self.status = 200
        self.fetches = 0

    async def handle(self, request: Request) -> Reply:
        if request.path != "/jwks.json":
            return json_reply(404, {"error": "not found"})
        self.fetches += 1
        return Reply(self.status, [("content-type", "application/json")], self.document)


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(jwk(RSA_KEY, "k1"), jwk(EC_KEY, "e1")))
    return path


def refused(run: Any, verifier: JwtVerifier, tok: str, why: str) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        run(verifier.verify(tok))
    assert why in caught.value.message
    assert caught.value.status == 401 and caught.value.code == "invalid_api_key"
    assert not tok or (tok not in caught.value.message and tok[-20:] not in caught.value.message)


def test_claims_map_to_user_team_and_role(run: Any, jwks_file: Path) -> None:
    verifier = JwtVerifier(config(jwks_file=str(jwks_file)))
    who = run(verifier.verify(token(team="ml", role="team_admin", name="Alice A.")))
    assert who == Identity(kind="jwt", label="alice", role="team_admin",
                           user=User(id="alice", name="Alice A.", team_id="ml",
                                     role="team_admin"),
                           team=Team(id="ml", name="ml"))
    assert [scope for scope, _, _ in who.scopes()] == ["user", "team"]
    plain = run(verifier.verify(token(EC_KEY, "e1", "ES256")))
    assert (plain.role, plain.team, plain.user.id) == ("user", None, "alice")


def test_custom_claims(run: Any, jwks_file: Path) -> None:
    verifier = JwtVerifier(config(jwks_file=str(jwks_file), user_claim="email",
                                  team_claim="org", role_claim="roles"))
    who = run(verifier.verify(token(email="a@example.test", org="research",
                                    roles=["Employee", "viewer", "admin"])))
    assert (who.user.id, who.team.id, who.role, who.label) == (
        "a@example.test", "research", "admin", "alice")
    refused(run, verifier, token(org="research"), "no 'email' claim")


@pytest.mark.parametrize("claim, role", [(None, "user"), ([], "user"), ("viewer", "viewer"),
                                         (["user", "viewer"], "user"), ("root", None),
                                         (["Employee"], None), (7, None)])
def test_role_claim(claim: Any, role: str | None) -> None:
    assert role_of(claim) == role


def test_unknown_role_is_refused(run: Any, jwks_file: Path) -> None:
    verifier = JwtVerifier(config(jwks_file=str(jwks_file)))
    refused(run, verifier, token(role="superuser"), "'role' claim names none of")


def test_bad_tokens_are_refused(run: Any, jwks_file: Path) -> None:
    verifier = JwtVerifier(config(jwks_file=str(jwks_file), leeway_seconds=30))
    now = int(time.time())
    refused(run, verifier, token(exp=now - 3600), "expired")
    refused(run, verifier, token(nbf=now + 3600), "not valid yet")
    refused(run, verifier, token(iss="https://evil.example.test/"), "wrong issuer")
    refused(run, verifier, token(aud="someone-else"), "wrong audience")
    refused(run, verifier, token(exp=None), "no 'exp' claim")
    refused(run, verifier, token(RSA_KEY_2), "bad signature")  # right kid, wrong key
    refused(run, verifier, token(EC_KEY, "k1", "ES256"), "does not match its algorithm")
    refused(run, verifier, token(RSA_KEY, "e1"), "does not match its algorithm")
    refused(run, verifier, "not.a.jwt", "not a well-formed JWT")
    refused(run, verifier, "", "not a JWT")
    # within the leeway: accepted
    assert run(verifier.verify(token(exp=now - 10))).label == "alice"


def test_alg_none_and_hs256_are_refused(run: Any, jwks_file: Path) -> None:
    verifier = JwtVerifier(config(jwks_file=str(jwks_file)))
    header = {"alg": "none", "typ": "JWT", "kid": "k1"}
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": int(time.time()) + 60}
    unsigned = ".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
                        for part in (header, claims)) + "."
    refused(run, verifier, unsigned, "algorithm is not one of ES256, RS256")
    # HS256 keyed with the public key's bytes: the classic confusion attack
    public_pem = jwk(RSA_KEY, "k1")["n"].encode()
    hs = jwt.encode(claims, public_pem, algorithm="HS256", headers={"kid": "k1"})
    refused(run, verifier, hs, "algorithm is not one of")


@pytest.mark.parametrize("algorithms", [["none"], ["HS256"], ["RS256", "HS512"], []])
def test_symmetric_or_none_algorithms_do_not_build(algorithms: list[str],
                                                   jwks_file: Path) -> None:
    with pytest.raises(ConfigError, match="public-key"):
        JwtVerifier(config(jwks_file=str(jwks_file), algorithms=algorithms))


def test_one_key_source_is_needed(jwks_file: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of jwks_url and jwks_file"):
        JwtVerifier(config())
    with pytest.raises(ConfigError, match="exactly one of jwks_url and jwks_file"):
        JwtVerifier(config(jwks_file=str(jwks_file), jwks_url="http://127.0.0.1:1/j"))


def test_keyless_kid_uses_the_only_key(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    data = jwk(RSA_KEY, "k1")
    del data["kid"]
    path.write_bytes(jwks(data))
    verifier = JwtVerifier(config(jwks_file=str(path)))
    assert run(verifier.verify(token(kid=None))).label == "alice"


def test_private_keys_and_junk_in_the_document_are_skipped(run: Any, tmp_path: Path) -> None:
    path = tmp_path / "mixed.json"
    private = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY_2))
    path.write_bytes(jwks({**private, "kid": "p1"}, {"kty": "oct", "k": "c2VjcmV0", "kid": "s1"},
                          {"kty": "RSA", "kid": "broken"}, jwk(RSA_KEY, "k1")))
    verifier = JwtVerifier(config(jwks_file=str(path)))
    assert run(verifier.verify(token())).label == "alice"
    refused(run, verifier, token(RSA_KEY_2, "p1"), "not among the issuer's keys")


def test_lookup_attaches_stored_records(run: Any, jwks_file: Path) -> None:
    stored = Team(id="ml", name="ml", rpm=5)

    async def lookup(identity: Identity) -> Identity:
        assert identity.team is not None and identity.team.id == "ml"
        return Identity(kind=identity.kind, label=identity.label, role=identity.role,
                        user=identity.user, team=stored)

    verifier = JwtVerifier(config(jwks_file=str(jwks_file)), lookup=lookup)
    assert run(verifier.verify(token(team="ml"))).team is stored


def test_jwks_url_rotation_and_refetch_pacing(run: Any) -> None:
    async def body() -> None:
        now = [1000.0]
        async with FakeJwks(jwks(jwk(RSA_KEY, "k1"))) as server:
            verifier = JwtVerifier(config(jwks_url=f"{server.origin}/jwks.json",
                                          jwks_refresh_seconds=300),
                                   clock=lambda: now[0])
            try:
                assert (await verifier.verify(token())).label == "alice"
                assert (await verifier.verify(token())).label == "alice"
                assert server.fetches == 1  # cached
                # the issuer rotates: k2 is published beside k1
                server.document = jwks(jwk(RSA_KEY, "k1"), jwk(RSA_KEY_2, "k2"))
                now[0] += REFETCH_SECONDS
                assert (await verifier.verify(token(RSA_KEY_2, "k2"))).label == "alice"
                assert server.fetches == 2
                assert (await verifier.verify(token())).label == "alice"  # k1 still held
                # unknown kids right after a fetch: refused without fetching again
                for i in range(20):
                    with pytest.raises(AuthenticationFailed, match="not among"):
                        await verifier.verify(token(RSA_KEY_2, f"ghost{i}"))
                assert server.fetches == 2
                # later, one unknown kid fetches once; still unknown: refused
                now[0] += REFETCH_SECONDS
                with pytest.raises(AuthenticationFailed, match="not among"):
                    await verifier.verify(token(RSA_KEY_2, "ghost"))
                assert server.fetches == 3
                # k1 retired by the issuer: gone after the next refresh
                server.document = jwks(jwk(RSA_KEY_2, "k2"))
                now[0] += 300
                assert (await verifier.verify(token(RSA_KEY_2, "k2"))).label == "alice"
                await server.wait_for(lambda: server.fetches == 4)
                await asyncio.sleep(0)
                if verifier._inflight is not None:
                    await verifier._inflight
                with pytest.raises(AuthenticationFailed, match="not among"):
                    await verifier.verify(token())
            finally:
                await verifier.aclose()

    run(body())


def test_a_failed_fetch_keeps_the_keys(run: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        now = [1000.0]
        async with FakeJwks(jwks(jwk(RSA_KEY, "k1"))) as server:
            verifier = JwtVerifier(config(jwks_url=f"{server.origin}/jwks.json"),
                                   clock=lambda: now[0])
            try:
                assert (await verifier.verify(token())).label == "alice"
                server.status = 503
                now[0] += REFETCH_SECONDS
                with pytest.raises(AuthenticationFailed, match="not among"):
                    await verifier.verify(token(RSA_KEY_2, "k2"))
                assert server.fetches == 2
                assert (await verifier.verify(token())).label == "alice"
            finally:
                await verifier.aclose()

    run(body())
    assert "not refreshed (keeping 1 held): HTTP 503" in caplog.text


def test_unreachable_jwks_url_refuses_with_401(run: Any) -> None:
    async def body() -> None:
        verifier = JwtVerifier(config(jwks_url="http://127.0.0.1:9/jwks.json"))
        try:
            with pytest.raises(AuthenticationFailed, match="not among"):
                await verifier.verify(token())
        finally:
            await verifier.aclose()

    run(body())
