"""Key generation, recognition and hashing; record ids. Pure functions, no store."""

from __future__ import annotations

import hashlib
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelmux.tenancy import keys


def test_a_key_has_its_shape_prefix_and_hash() -> None:
    made = keys.generate_key()
    assert made.secret.startswith("sk-mm-") and len(made.secret) == keys.KEY_LENGTH == 55
    assert set(made.secret[6:]) <= set(string.ascii_letters + string.digits)
    assert made.prefix == made.secret[:12] and made.secret.startswith(made.prefix)
    assert made.hash == hashlib.sha256(made.secret.encode()).hexdigest()
    assert keys.well_formed(made.secret)


def test_keys_differ() -> None:
    made = {keys.generate_key().secret for _ in range(200)}
    assert len(made) == 200


def test_a_typo_fails_the_checksum_before_any_lookup() -> None:
    secret = keys.generate_key().secret
    i = 20
    typo = secret[:i] + ("a" if secret[i] != "a" else "b") + secret[i + 1:]
    assert not keys.well_formed(typo)
    for bad in ("", "sk-mm-", secret[:-1], secret + "0", "sk-xx-" + secret[6:],
                secret[:30] + "-" + secret[31:], "Bearer " + secret):
        assert not keys.well_formed(bad)


@given(st.integers(min_value=0, max_value=2**256 - 1))
def test_base62_is_fixed_width_and_reversible(number: int) -> None:
    text = keys.base62(number, keys.BODY_CHARS)
    assert len(text) == keys.BODY_CHARS
    assert sum(keys.BASE62.index(c) * 62**i for i, c in enumerate(reversed(text))) == number


def test_base62_refuses_what_does_not_fit() -> None:
    with pytest.raises(ValueError):
        keys.base62(62**6, 6)
    with pytest.raises(ValueError):
        keys.base62(-1, 6)


def test_same_compares_whole_strings() -> None:
    assert keys.same("abc", "abc")
    assert not keys.same("abc", "abd") and not keys.same("abc", "ab")


def test_ids_are_short_random_and_named() -> None:
    ids = {keys.new_id("key") for _ in range(200)}
    assert len(ids) == 200
    assert all(i.startswith("key_") and len(i) == 4 + keys.ID_CHARS for i in ids)
    assert len(keys.new_id()) == keys.ID_CHARS


def test_mint_gives_the_secret_once_and_a_record_without_it() -> None:
    secret, key = keys.mint(name="ci", team_id="t1", rpm=5)
    assert keys.well_formed(secret) and key.id.startswith("key_")
    assert (key.prefix, key.hash) == (keys.key_prefix(secret), keys.hash_key(secret))
    assert (key.name, key.team_id, key.rpm) == ("ci", "t1", 5)
    assert secret not in repr(key)
