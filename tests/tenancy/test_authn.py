"""``Authenticator``: master key, keys by hash through the cache, revocation, expiry,
throttling, touch batching and the metrics hook, on an in-memory store."""

from __future__ import annotations

import asyncio

import pytest

from modelmux.config.features import AuthConfig, JwtConfig
from modelmux.errors import AuthenticationFailed, RateLimited, ServiceUnavailable
from modelmux.tenancy.authn import Authenticator
from modelmux.tenancy.keys import generate_key, hash_key
from modelmux.tenancy.records import Identity, Key, Team, User
from tests.tenancy.memstore import MemoryStore

SECRET = generate_key().secret


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def setup(**auth: object) -> tuple[Authenticator, MemoryStore, Clock, list[str]]:
    store, clock, failures = MemoryStore(), Clock(), []
    team = Team(id="t1", name="research", models=("m*",))
    user = User(id="u1", name="ann", team_id="t1")
    store.teams[team.id], store.users[user.id] = team, user
    store.keys["k1"] = Key(id="k1", prefix=SECRET[:12], hash=hash_key(SECRET),
                           user_id="u1")
    config = AuthConfig(mode="keys", master_key="master-secret", **auth)  # type: ignore[arg-type]
    return (Authenticator(config, store, clock=clock, on_failure=failures.append), store, clock,
            failures)


def bearer(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", b"Bearer " + token.encode())]


def test_master_key_is_admin() -> None:
    auth, *_ = setup()
    identity = asyncio.run(auth.identify(bearer("master-secret"), "1.2.3.4:1"))
    assert identity.kind == "master" and identity.role == "admin"


def test_admin_key_of_the_admin_table_is_admin_too() -> None:
    store = MemoryStore()
    auth = Authenticator(AuthConfig(mode="keys"), store, admin_key="old-admin")
    assert asyncio.run(auth.identify(bearer("old-admin"), "h:1")).role == "admin"


def test_key_found_with_its_user_and_team_and_cached() -> None:
    auth, store, clock, _ = setup()

    async def go() -> None:
        first = await auth.identify([(b"x-api-key", SECRET.encode())], "h:1")
        assert first.key is not None and first.key.id == "k1"
        assert first.user is not None and first.user.name == "ann"
        assert first.team is not None and first.team.id == "t1" and first.team_id == "t1"
        assert first.label == SECRET[:12] and SECRET not in repr(first.label)
        await auth.identify(bearer(SECRET), "h:1")
        assert store.lookups == 1  # the second came from the cache
        clock.now += 61  # past key_cache_seconds
        await auth.identify(bearer(SECRET), "h:1")
        assert store.lookups == 2
        await auth.aclose()

    asyncio.run(go())


def test_a_change_in_the_store_drops_the_cache_so_a_revoked_key_fails() -> None:
    auth, store, clock, failures = setup()

    async def go() -> None:
        await auth.identify(bearer(SECRET), "h:1")
        await store.revoke_key("k1", clock.now)
        with pytest.raises(AuthenticationFailed) as caught:
            await auth.identify(bearer(SECRET), "h:1")
        assert caught.value.status == 401 and caught.value.code == "invalid_api_key"
        assert "revoked" in caught.value.message
        await auth.aclose()

    asyncio.run(go())
    assert failures == ["revoked"]


@pytest.mark.parametrize("headers,reason", [([], "missing"), (bearer("sk-mm-nope"), "unknown")])
def test_missing_or_unknown_is_401(headers: list[tuple[bytes, bytes]], reason: str) -> None:
    auth, _, _, failures = setup()
    with pytest.raises(AuthenticationFailed) as caught:
        asyncio.run(auth.identify(headers, "h:1"))
    assert caught.value.code == "invalid_api_key"
    assert b"sk-mm-nope" not in caught.value.body()
    assert failures == [reason]


def test_expired_key_fails_even_from_the_cache() -> None:
    auth, store, clock, failures = setup()
    store.keys["k1"] = Key(id="k1", prefix="p", hash=hash_key(SECRET),
                           expires_at=clock.now + 10)

    async def go() -> None:
        await auth.identify(bearer(SECRET), "h:1")
        clock.now += 11
        with pytest.raises(AuthenticationFailed):
            await auth.identify(bearer(SECRET), "h:1")

    asyncio.run(go())
    assert failures == ["expired"]


def test_repeated_failures_from_one_address_are_throttled() -> None:
    auth, _, clock, failures = setup(failed_auth_per_minute=3)

    async def go() -> None:
        for _ in range(3):
            with pytest.raises(AuthenticationFailed):
                await auth.identify(bearer("sk-mm-guess"), "9.9.9.9:1")
        with pytest.raises(RateLimited) as caught:  # even the right key: no guessing on
            await auth.identify(bearer(SECRET), "9.9.9.9:2")
        assert caught.value.status == 429
        assert dict(caught.value.headers)[b"retry-after"] == b"60"
        assert (await auth.identify(bearer(SECRET), "8.8.8.8:1")).key is not None
        clock.now += 60
        assert (await auth.identify(bearer(SECRET), "9.9.9.9:3")).key is not None

    asyncio.run(go())
    assert failures == ["unknown"] * 3 + ["throttled"]


def test_last_used_is_written_in_batches_off_the_request() -> None:
    auth, store, clock, _ = setup()

    async def go() -> None:
        await auth.identify(bearer(SECRET), "h:1")
        clock.now += 5
        await auth.identify(bearer(SECRET), "h:1")
        assert store.touched == []  # nothing written on the request path
        await auth.aclose()

    asyncio.run(go())
    assert store.touched == [{"k1": 1005.0}]
    assert store.closed == 1


def test_a_malformed_key_is_refused_without_a_store_lookup_a_well_formed_one_is_looked_up() -> None:
    auth, store, _, failures = setup()
    with pytest.raises(AuthenticationFailed):
        asyncio.run(auth.identify(bearer("sk-mm-typo"), "h:1"))
    assert store.lookups == 0
    with pytest.raises(AuthenticationFailed):
        asyncio.run(auth.identify(bearer(generate_key().secret), "h:1"))
    assert store.lookups == 1 and failures == ["unknown", "unknown"]


class Verifier:
    """Stands in for ``tenancy.jwt.JwtVerifier`` (its own tests cover the tokens)."""

    def __init__(self, exp: float = 10_000.0) -> None:
        self.seen: list[str] = []
        self.exp = exp

    async def check(self, token: str) -> tuple[Identity, float]:
        self.seen.append(token)
        if token.endswith(".bad"):
            raise AuthenticationFailed("The token's signature does not verify.")
        return Identity(kind="jwt", label="alice", role="viewer"), self.exp


JWT_CONFIG = {"jwt": JwtConfig(issuer="https://login.example/", audience="modelmux",
                               jwks_file="/nonexistent")}


def test_jwt_shaped_tokens_go_to_the_verifier_when_jwt_is_set() -> None:
    auth, store, _, failures = setup(**JWT_CONFIG)
    verifier = auth._jwt = Verifier()
    identity = asyncio.run(auth.identify(bearer("aaa.bbb.ccc"), "h:1"))
    assert identity.kind == "jwt" and identity.role == "viewer"
    with pytest.raises(AuthenticationFailed) as caught:
        asyncio.run(auth.identify(bearer("aaa.bbb.bad"), "h:1"))
    assert caught.value.status == 401 and caught.value.code == "invalid_api_key"
    assert verifier.seen == ["aaa.bbb.ccc", "aaa.bbb.bad"]
    assert failures == ["jwt"] and store.lookups == 0


def test_without_jwt_config_a_jwt_shaped_token_is_just_an_unknown_key() -> None:
    auth, _, _, failures = setup()
    with pytest.raises(AuthenticationFailed):
        asyncio.run(auth.identify(bearer("aaa.bbb.ccc"), "h:1"))
    assert failures == ["unknown"]


class Broken(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.down = True

    async def open(self) -> None:
        self.opened += 1
        if self.down:
            raise OSError("disk I/O error")


def test_a_store_that_cannot_open_answers_503_and_is_tried_again() -> None:
    store = Broken()
    auth = Authenticator(AuthConfig(mode="keys"), store)
    secret = generate_key()

    async def go() -> None:
        with pytest.raises(ServiceUnavailable) as caught:
            await auth.identify(bearer(secret.secret), "h:1")
        assert caught.value.status == 503 and secret.secret not in caught.value.message
        store.down = False
        store.keys["k"] = Key(id="k", prefix=secret.prefix, hash=secret.hash)
        assert (await auth.identify(bearer(secret.secret), "h:1")).key is not None
        await auth.aclose()

    asyncio.run(go())
    assert store.opened == 2
