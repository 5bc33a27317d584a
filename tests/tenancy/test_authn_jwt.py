"""JWT callers in the ``Authenticator``: a verified token is remembered until its ``exp`` (and
at most ``key_cache_seconds``), dropped on a change notice; its user and team claims pick up
the stored records (by id or name), so their limits and models apply."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from modelmux.config.features import AuthConfig
from modelmux.errors import PermissionDenied
from modelmux.tenancy.authn import Authenticator
from modelmux.tenancy.records import Identity, Team, User
from tests.tenancy.memstore import MemoryStore
from tests.tenancy.test_authn import JWT_CONFIG, Verifier, bearer, setup
from tests.tenancy.test_jwt import EC_KEY, RSA_KEY, config, jwk, jwks, token


def test_a_verified_token_is_remembered_until_its_exp() -> None:
    auth, _, clock, _ = setup(key_cache_seconds=60, **JWT_CONFIG)
    verifier = auth._jwt = Verifier(exp=clock.now + 30)

    async def go() -> None:
        for _ in range(3):
            assert (await auth.identify(bearer("aaa.bbb.ccc"), "h:1")).kind == "jwt"
        assert verifier.seen == ["aaa.bbb.ccc"]
        clock.now += 29
        await auth.identify(bearer("aaa.bbb.ccc"), "h:1")
        assert len(verifier.seen) == 1
        clock.now += 1  # at exp: checked again (the verifier decides whether it expired)
        await auth.identify(bearer("aaa.bbb.ccc"), "h:1")
        assert len(verifier.seen) == 2

    asyncio.run(go())


def test_a_token_is_remembered_at_most_key_cache_seconds_and_dropped_on_a_change() -> None:
    auth, store, clock, _ = setup(key_cache_seconds=10, **JWT_CONFIG)
    verifier = auth._jwt = Verifier(exp=clock.now + 3600)

    async def go() -> None:
        await auth.identify(bearer("aaa.bbb.ccc"), "h:1")
        clock.now += 10
        await auth.identify(bearer("aaa.bbb.ccc"), "h:1")
        assert len(verifier.seen) == 2
        store.notice("user", "u1")
        await auth.identify(bearer("aaa.bbb.ccc"), "h:1")
        assert len(verifier.seen) == 3

    asyncio.run(go())


def test_without_a_key_cache_tokens_are_checked_every_time() -> None:
    auth, _, clock, _ = setup(key_cache_seconds=0, **JWT_CONFIG)
    verifier = auth._jwt = Verifier(exp=clock.now + 3600)

    async def go() -> None:
        for _ in range(2):
            await auth.identify(bearer("aaa.bbb.ccc"), "h:1")

    asyncio.run(go())
    assert len(verifier.seen) == 2


def claims_identity(user: str, team: str | None) -> Identity:
    return Identity(kind="jwt", label=user, role="viewer",
                    user=User(id=user, name=user, team_id=team, role="viewer"),
                    team=Team(id=team, name=team) if team else None)


@pytest.mark.parametrize(("user", "team"), [("u1", None), ("ann", None), ("ann", "research"),
                                            ("u1", "t1")])
def test_stored_user_and_team_by_id_or_name(user: str, team: str | None) -> None:
    auth, *_ = setup(**JWT_CONFIG)
    found = asyncio.run(auth._stored(claims_identity(user, team)))
    assert found.user is not None and found.user.id == "u1" and found.user.name == "ann"
    assert found.team is not None and found.team.id == "t1" and found.team.models == ("m*",)
    assert (found.kind, found.label, found.role) == ("jwt", user, "viewer")


def test_claims_naming_nothing_stored_stay_as_they_are() -> None:
    auth, *_ = setup(**JWT_CONFIG)
    bare = claims_identity("zed", "nowhere")
    assert asyncio.run(auth._stored(bare)) is bare


def test_a_real_token_gets_the_stored_teams_models(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(jwks(jwk(RSA_KEY, "k1"), jwk(EC_KEY, "e1")))
    store = MemoryStore()
    store.teams["t1"] = Team(id="t1", name="research", models=("m*",), rpm=7)
    auth = Authenticator(AuthConfig(mode="keys", jwt=config(jwks_file=str(path))), store)

    async def go() -> Any:
        tok = token(sub="alice", team="research")
        who = await auth.identify(bearer(tok), "h:1", "m-large")
        assert who.team is not None and who.team.rpm == 7
        with pytest.raises(PermissionDenied):
            await auth.identify(bearer(tok), "h:1", "other")
        assert list(auth._tokens) == [tok.encode()]

    asyncio.run(go())
