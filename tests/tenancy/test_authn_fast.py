"""``Authenticator.fast``: a header value that carried a cached credential is let in without
parsing, and only when ``identify`` would let it in; every other case is left to ``identify``."""

from __future__ import annotations

import asyncio

import pytest

from modelmux.errors import AuthenticationFailed, PermissionDenied
from modelmux.tenancy.records import Key
from tests.tenancy.test_authn import SECRET, bearer, setup


def test_a_header_value_is_found_once_identify_has_seen_it() -> None:
    auth, store, _, _ = setup()
    assert auth.fast(bearer(SECRET), "m1") is None  # never seen
    found = asyncio.run(auth.identify(bearer(SECRET), "h:1", "m1"))
    entry = auth.fast(bearer(SECRET), "m1")
    assert entry is not None and entry.identity is found
    assert auth.fast([(b"authorization", b"bearer  " + SECRET.encode())], "m1") is None
    assert store.lookups == 1


def test_the_two_headers_are_remembered_apart() -> None:
    auth, *_ = setup()
    asyncio.run(auth.identify([(b"x-api-key", SECRET.encode())], "h:1"))
    assert auth.fast([(b"x-api-key", SECRET.encode())]) is not None
    assert auth.fast([(b"authorization", SECRET.encode())]) is None
    assert auth.fast([(b"host", b"a"), (b"x-api-key", SECRET.encode())]) is not None


def test_a_model_not_yet_decided_or_refused_goes_to_identify() -> None:
    auth, *_ = setup()
    asyncio.run(auth.identify(bearer(SECRET), "h:1"))
    assert auth.fast(bearer(SECRET), "m1") is None  # the team lists m*: not yet decided
    asyncio.run(auth.identify(bearer(SECRET), "h:1", "m1"))
    assert auth.fast(bearer(SECRET), "m1") is not None
    assert auth.fast(bearer(SECRET)) is not None  # no model asked: nothing to check
    with pytest.raises(PermissionDenied):
        asyncio.run(auth.identify(bearer(SECRET), "h:1", "other"))
    assert auth.fast(bearer(SECRET), "other") is None


def test_the_cache_lifetime_and_the_keys_own_expiry_end_it() -> None:
    auth, store, clock, failures = setup()
    asyncio.run(auth.identify(bearer(SECRET), "h:1"))
    clock.now += 61  # past key_cache_seconds
    assert auth.fast(bearer(SECRET)) is None
    store.keys["k1"] = Key(id="k1", prefix=SECRET[:12], hash=store.keys["k1"].hash,
                           user_id="u1", expires_at=clock.now + 5)
    asyncio.run(auth.identify(bearer(SECRET), "h:1"))
    assert auth.fast(bearer(SECRET)) is not None
    clock.now += 5
    assert auth.fast(bearer(SECRET)) is None
    with pytest.raises(AuthenticationFailed):
        asyncio.run(auth.identify(bearer(SECRET), "h:1"))
    assert failures == ["expired"]


def test_a_change_in_the_store_or_a_throttled_address_sends_everyone_to_identify() -> None:
    auth, *_ = setup()
    asyncio.run(auth.identify(bearer(SECRET), "h:1"))
    auth._changed("key", "k1")  # what the store reports on a revocation
    assert auth.fast(bearer(SECRET)) is None
    asyncio.run(auth.identify(bearer(SECRET), "h:1"))
    with pytest.raises(AuthenticationFailed):
        asyncio.run(auth.identify(bearer("sk-wrong"), "bad:1"))
    assert auth.fast(bearer(SECRET)) is None


def test_it_notes_the_last_use_and_remembers_nothing_without_a_cache() -> None:
    auth, _, clock, _ = setup()
    asyncio.run(auth.identify(bearer(SECRET), "h:1"))
    auth._touched.clear()
    clock.now += 1
    assert auth.fast(bearer(SECRET)) is not None
    assert auth._touched == {"k1": clock.now}
    uncached, *_ = setup(key_cache_seconds=0)
    asyncio.run(uncached.identify(bearer(SECRET), "h:1"))
    assert uncached.fast(bearer(SECRET)) is None
