"""Every ``TenancyStore`` method, one test body for both stores (SQLite file, real PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from modelmux.tenancy.keys import mint
from modelmux.tenancy.migrations import TENANCY, Component, Migration
from modelmux.tenancy.records import Key, Team, User
from modelmux.tenancy.store import Conflict, TenancyStore
from tests.upstream import run

NOTICE_TIMEOUT = 5.0


def with_store(make_store: Callable[..., Any],
               body: Callable[[Any], Awaitable[None]], **options: Any) -> None:
    """Open a store, run ``body(store)``, close the store even when the body failed."""

    async def main() -> None:
        store = make_store(**options)
        await store.open()
        try:
            await body(store)
        finally:
            await store.close()

    run("asyncio", main(), timeout=30)


def new_key(**fields: Any) -> Key:
    return mint(**fields)[1]


def test_stores_offer_every_protocol_method(make_store: Callable[..., Any]) -> None:
    store = make_store()
    methods = [name for name in vars(TenancyStore) if not name.startswith("_")]
    assert len(methods) == 22
    for name in methods:
        assert callable(getattr(store, name)), name


def test_teams(make_store: Callable[..., Any]) -> None:
    async def body(store: Any) -> None:
        team = Team(id="team_a", name="eng", models=("gpt-*", "claude"), rpm=10, tpm=1000,
                    max_parallel=2, max_budget_usd=12.5, budget_period="monthly",
                    metadata={"cost_center": 7, "tags": ["x"]})
        await store.create_team(team)
        await store.create_team(Team(id="team_b", name="ops"))
        got = await store.get_team("team_a")
        assert got is not None and got.created_at > 0
        assert got == Team(**{**_fields(team), "created_at": got.created_at})
        assert await store.get_team("eng") == got
        assert await store.get_team("nobody") is None
        assert [t.id for t in await store.list_teams()] == ["team_a", "team_b"]

        updated = await store.update_team("team_a", {"rpm": None, "tpm": 5, "models": ["m1"]})
        assert updated is not None
        assert (updated.rpm, updated.tpm, updated.models) == (None, 5, ("m1",))
        assert await store.get_team("team_a") == updated
        assert await store.update_team("nobody", {"rpm": 1}) is None

        assert await store.delete_team("team_b") is True
        assert await store.delete_team("team_b") is False
        assert await store.get_team("ops") is None

    with_store(make_store, body)


def test_users(make_store: Callable[..., Any]) -> None:
    async def body(store: Any) -> None:
        await store.create_team(Team(id="t1", name="eng"))
        await store.create_user(User(id="u1", name="ana", team_id="t1", role="team_admin",
                                     rpm=3))
        await store.create_user(User(id="u2", name="bo"))
        assert (await store.get_user("ana")) == (await store.get_user("u1"))
        assert [u.id for u in await store.list_users()] == ["u1", "u2"]
        assert [u.id for u in await store.list_users(team_id="t1")] == ["u1"]
        changed = await store.update_user("u2", {"role": "viewer", "team_id": "t1"})
        assert changed is not None and (changed.role, changed.team_id) == ("viewer", "t1")
        assert await store.update_user("nope", {"role": "viewer"}) is None
        assert await store.get_user("nope") is None
        assert await store.delete_user("u2") is True
        assert await store.delete_user("u2") is False

    with_store(make_store, body)


def test_keys(make_store: Callable[..., Any]) -> None:
    async def body(store: Any) -> None:
        await store.create_team(Team(id="t1", name="eng"))
        key = new_key(name="ci", team_id="t1", models=("gpt-4o",), rpm=60, expires_at=2e9)
        other = new_key()
        await store.create_key(key)
        await store.create_key(other)
        got = await store.get_key(key.id)
        assert got is not None and got.hash == key.hash and got.expires_at == 2e9
        assert await store.key_by_hash(key.hash) == got
        assert await store.key_by_hash("0" * 64) is None
        assert await store.get_key("key_unknown") is None
        assert [k.id for k in await store.list_keys(team_id="t1")] == [key.id]
        assert {k.id for k in await store.list_keys()} == {key.id, other.id}

        limited = await store.update_key(key.id, {"rpm": 5, "max_parallel": 1,
                                                  "max_budget_usd": 1.5, "budget_period": "daily"})
        assert limited is not None
        assert (limited.rpm, limited.max_parallel, limited.max_budget_usd,
                limited.budget_period) == (5, 1, 1.5, "daily")
        assert await store.key_by_hash(key.hash) == limited
        assert await store.update_key("key_unknown", {"rpm": 1}) is None

    with_store(make_store, body)


def test_revoke_keeps_the_first_time(make_store: Callable[..., Any]) -> None:
    async def body(store: Any) -> None:
        key = new_key()
        await store.create_key(key)
        assert await store.revoke_key(key.id, 100.0) is True
        assert await store.revoke_key(key.id, 200.0) is True
        revoked = await store.key_by_hash(key.hash)
        assert revoked is not None and revoked.revoked_at == 100.0
        assert await store.revoke_key("key_unknown", 1.0) is False

    with_store(make_store, body)


def test_touch_keys_never_goes_backwards(make_store: Callable[..., Any]) -> None:
    async def body(store: Any) -> None:
        a, b = new_key(), new_key()
        await store.create_key(a)
        await store.create_key(b)
        await store.touch_keys({})
        await store.touch_keys({a.id: 50.0, b.id: 60.0, "key_unknown": 1.0})
        await store.touch_keys({a.id: 40.0})
        found = {k.id: k.last_used_at for k in await store.list_keys()}
        assert found == {a.id: 50.0, b.id: 60.0}

    with_store(make_store, body)


def test_conflicts(make_store: Callable[..., Any]) -> None:
    async def body(store: Any) -> None:
        await store.create_team(Team(id="t1", name="eng"))
        await store.create_team(Team(id="t2", name="ops"))
        with pytest.raises(Conflict):
            await store.create_team(Team(id="t3", name="eng"))
        with pytest.raises(Conflict):
            await store.update_team("t2", {"name": "eng"})
        assert (await store.get_team("t2")).name == "ops"  # type: ignore[union-attr]
        key = new_key(team_id="t1")
        await store.create_key(key)
        with pytest.raises(Conflict):
            await store.create_key(_same_hash(key))
        await store.create_user(User(id="u1", name="ana", team_id="t2"))
        user_key = new_key(user_id="u1")
        await store.create_key(user_key)
        with pytest.raises(Conflict):
            await store.delete_team("t1")  # an active key
        with pytest.raises(Conflict):
            await store.delete_team("t2")  # a user
        with pytest.raises(Conflict):
            await store.delete_user("u1")  # an active key
        await store.revoke_key(key.id, 1.0)
        await store.revoke_key(user_key.id, 1.0)
        assert await store.delete_team("t1") is True
        assert await store.delete_user("u1") is True
        assert await store.delete_team("t2") is True

    with_store(make_store, body)


def test_bad_fields_and_values_are_refused(make_store: Callable[..., Any]) -> None:
    async def body(store: Any) -> None:
        await store.create_team(Team(id="t1", name="eng"))
        for changes in ({"colour": "red"}, {"id": "t9"}, {"created_at": 1.0},
                        {"budget_period": "hourly"}, {"rpm": "many"}):
            with pytest.raises(ValueError):
                await store.update_team("t1", changes)
        with pytest.raises(ValueError):
            await store.create_user(User(id="u1", name="ana", role="root"))
        with pytest.raises(ValueError):
            await store.create_key(new_key(budget_period="yearly"))
        assert await store.list_users() == [] and await store.list_keys() == []
        assert (await store.get_team("t1")).budget_period == "total"  # type: ignore[union-attr]

    with_store(make_store, body)


def test_records_survive_close_and_reopen(make_store: Callable[..., Any]) -> None:
    key = new_key(name="kept", models=("a", "b"), metadata={"owner": "ana"})

    async def write(store: Any) -> None:
        await store.create_team(Team(id="t1", name="eng", rpm=7))
        await store.create_key(key)
        await store.touch_keys({key.id: 123.0})

    async def read(store: Any) -> None:
        assert [a.before for a in store.applied] == [TENANCY.latest]
        got = await store.key_by_hash(key.hash)
        assert got is not None and (got.name, got.models, got.metadata, got.last_used_at) == (
            "kept", ("a", "b"), {"owner": "ana"}, 123.0)
        assert (await store.get_team("eng")).rpm == 7  # type: ignore[union-attr]

    with_store(make_store, write)
    with_store(make_store, read)


EXTRA_V1 = Migration(1, sqlite=("CREATE TABLE extra_things (x INTEGER)",),
                     postgres=("CREATE TABLE extra_things (x INTEGER)",))
EXTRA_V2 = Migration(2, sqlite=("ALTER TABLE extra_things ADD COLUMN y TEXT",),
                     postgres=("ALTER TABLE extra_things ADD COLUMN y TEXT",))


def test_migrations_are_versioned_per_component_and_idempotent(
        make_store: Callable[..., Any]) -> None:
    seen: list[list[tuple[str, int, int]]] = []

    async def record(store: Any) -> None:
        seen.append([tuple(a) for a in store.applied])

    with_store(make_store, record, components=[Component("extra", (EXTRA_V1,))])
    with_store(make_store, record, components=[Component("extra", (EXTRA_V1,))])
    with_store(make_store, record, components=[Component("extra", (EXTRA_V1, EXTRA_V2))])
    with_store(make_store, record)
    latest = TENANCY.latest
    assert seen == [
        [("tenancy", 0, latest), ("extra", 0, 1)],
        [("tenancy", latest, latest), ("extra", 1, 1)],
        [("tenancy", latest, latest), ("extra", 1, 2)],
        [("tenancy", latest, latest)],
    ]


def test_two_stores_opening_at_once_migrate_once(make_store: Callable[..., Any]) -> None:
    async def main() -> None:
        first, second = make_store(), make_store()
        try:
            await asyncio.gather(first.open(), second.open())
            befores = sorted(a.before for a in first.applied + second.applied)
            assert befores == [0, TENANCY.latest]
        finally:
            await first.close()
            await second.close()

    run("asyncio", main(), timeout=30)


def test_on_change_tells_this_store_at_once(make_store: Callable[..., Any]) -> None:
    """Each write's notice is there when the call returns (PostgreSQL may repeat it later,
    when its own NOTIFY comes back: notices are idempotent)."""

    async def body(store: Any) -> None:
        heard: list[tuple[str, str]] = []
        store.on_change(lambda kind, id: 1 / 0)  # a broken subscriber does not stop the rest
        store.on_change(lambda kind, id: heard.append((kind, id)))
        key = new_key()

        async def tells(notice: tuple[str, str], call: Awaitable[Any], told: bool = True) -> None:
            heard.clear()
            await call
            assert (notice in heard) is told

        await tells(("team", "t1"), store.create_team(Team(id="t1", name="eng")))
        await tells(("key", key.id), store.create_key(key))
        await tells(("team", "t1"), store.update_team("t1", {"rpm": 1}))
        await tells(("key", key.id), store.revoke_key(key.id, 1.0))
        await tells(("team", "t1"), store.delete_team("t1"))
        await tells(("key", "key_unknown"), store.revoke_key("key_unknown", 1.0), told=False)
        await tells(("key", "key_unknown"), store.update_key("key_unknown", {"rpm": 1}), told=False)

    with_store(make_store, body)


def test_on_change_reaches_another_instance(make_store: Callable[..., Any]) -> None:
    async def main() -> None:
        writer, reader = make_store(), make_store()
        await writer.open()
        await reader.open()
        try:
            key = new_key()
            await writer.create_key(key)
            revoked = asyncio.Event()
            reader.on_change(lambda kind, id: revoked.set() if (kind, id) == ("key", key.id)
                             else None)
            await writer.revoke_key(key.id, 1.0)
            await asyncio.wait_for(revoked.wait(), NOTICE_TIMEOUT)
            seen = await reader.key_by_hash(key.hash)
            assert seen is not None and seen.revoked_at == 1.0
        finally:
            await writer.close()
            await reader.close()

    run("asyncio", main(), timeout=30)


def test_a_closed_store_refuses_calls(make_store: Callable[..., Any]) -> None:
    async def main() -> None:
        store = make_store()
        await store.open()
        await store.close()
        await store.close()
        with pytest.raises(RuntimeError):
            await store.get_team("t1")

    run("asyncio", main(), timeout=30)


def _fields(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__struct_fields__}


def _same_hash(key: Key) -> Key:
    return Key(**{**_fields(new_key()), "hash": key.hash})
