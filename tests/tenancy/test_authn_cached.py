"""``Authenticator.cached``: the coroutine-free look-up of a cached credential answers only
what the full ``identify`` would, and hands every other case back to it."""

from __future__ import annotations

import asyncio

import pytest

from modelmux.errors import AuthenticationFailed, PermissionDenied
from modelmux.tenancy.records import Key
from tests.tenancy.test_authn import SECRET, bearer, setup


def test_only_a_cached_credential_is_answered() -> None:
    auth, store, clock, _ = setup()
    assert auth.cached([], "h:1") is None  # no credential: identify says 401
    assert auth.cached(bearer(SECRET), "h:1") is None  # not cached yet
    found = asyncio.run(auth.identify(bearer(SECRET), "h:1"))
    assert auth.cached(bearer(SECRET), "h:1", "m1") is found
    assert store.lookups == 1
    clock.now += 61  # past key_cache_seconds: back to the store through identify
    assert auth.cached(bearer(SECRET), "h:1") is None


def test_a_cached_key_is_still_held_to_its_models_and_its_expiry() -> None:
    auth, store, clock, failures = setup()
    asyncio.run(auth.identify(bearer(SECRET), "h:1"))
    with pytest.raises(PermissionDenied):
        auth.cached(bearer(SECRET), "h:1", "other")  # the team allows m* only
    store.keys["k1"] = Key(id="k1", prefix=SECRET[:12], hash=store.keys["k1"].hash,
                           user_id="u1", expires_at=clock.now + 5)
    auth._cache.clear()
    asyncio.run(auth.identify(bearer(SECRET), "h:1"))
    clock.now += 10
    with pytest.raises(AuthenticationFailed):
        auth.cached(bearer(SECRET), "h:1")
    assert failures == ["expired"]


def test_any_throttled_address_sends_everyone_through_identify() -> None:
    auth, *_ = setup()
    asyncio.run(auth.identify(bearer(SECRET), "h:1"))
    with pytest.raises(AuthenticationFailed):
        asyncio.run(auth.identify(bearer("sk-wrong"), "bad:1"))
    assert auth.cached(bearer(SECRET), "h:1") is None  # the failure window decides first
