"""Admin operations: bodies checked, keys shown once and never their hash, team admins kept
to their team."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from modelmux.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from modelmux.tenancy.keys import hash_key, well_formed
from modelmux.tenancy.manage import Manager
from tests.tenancy.memstore import MemoryStore
from tests.tenancy.test_store import with_store


def test_create_key_shows_it_once_and_stores_only_its_hash() -> None:
    store = MemoryStore()

    async def go() -> None:
        admin = Manager(store)
        team = await admin.create("teams", b'{"name": "research", "models": ["gpt-*"]}')
        created = await admin.create("keys", {"name": "ci", "team": "research", "rpm": 5,
                                              "expires_at": "2030-01-01T00:00:00Z"})
        secret = created["key"]
        assert created["team_id"] == team["id"] and "hash" not in created
        stored = store.keys[created["id"]]
        assert stored.hash == hash_key(secret) and well_formed(secret) and secret not in repr(stored.prefix)
        assert stored.expires_at == 1893456000.0
        listed = await admin.list_all("keys")
        assert [k["id"] for k in listed] == [created["id"]]
        assert "key" not in listed[0] and "hash" not in listed[0]
        shown = await admin.get("keys", created["id"])
        assert shown["prefix"] == secret[:12] and "key" not in shown

    asyncio.run(go())


@pytest.mark.parametrize("body", [b'{"name": "x", "rpm": -1}', b'{"nmae": "x"}',
                                  b'{"name": "x", "budget_period": "hourly"}', b"{",
                                  b'{"name": "x", "role": "root"}', b'{"team": "nope"}'])
def test_bad_bodies_are_400(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        asyncio.run(Manager(MemoryStore()).create("keys", body))


def test_team_admin_is_kept_to_its_team() -> None:
    store = MemoryStore()

    async def go() -> None:
        admin = Manager(store)
        mine = await admin.create("teams", {"name": "mine"})
        other = await admin.create("teams", {"name": "other"})
        theirs = await admin.create("keys", {"team": "other"})
        scoped = Manager(store, scope=mine["id"])
        created = await scoped.create("keys", {"name": "k"})
        assert created["team_id"] == mine["id"]
        assert [k["id"] for k in await scoped.list_all("keys")] == [created["id"]]
        assert [t["id"] for t in await scoped.list_all("teams")] == [mine["id"]]
        with pytest.raises(NotFound):
            await scoped.get("keys", theirs["id"])
        with pytest.raises(NotFound):
            await scoped.delete("keys", theirs["id"])
        with pytest.raises(PermissionDenied):
            await scoped.create("keys", {"team": "other"})
        for role in ("admin", "viewer"):
            with pytest.raises(PermissionDenied):
                await scoped.create("keys", {"role": role})
            with pytest.raises(PermissionDenied):
                await scoped.create("users", {"name": f"a-{role}", "role": role})
            with pytest.raises(PermissionDenied):
                await scoped.update("keys", created["id"], {"role": role})
        watcher = await admin.create("users", {"name": "watcher", "team": "mine",
                                               "role": "viewer"})
        with pytest.raises(PermissionDenied):  # the user's role would be the key's
            await scoped.create("keys", {"user": watcher["id"]})
        viewer_key = await admin.create("keys", {"team": "mine", "role": "viewer"})
        with pytest.raises(PermissionDenied):  # a new secret for a role it may not grant
            await scoped.rotate(viewer_key["id"])
        for role in ("user", "team_admin"):
            assert (await scoped.create("keys", {"role": role}))["role"] == role
        with pytest.raises(PermissionDenied):
            await scoped.create("teams", {"name": "new"})
        with pytest.raises(PermissionDenied):
            await scoped.update("teams", mine["id"], {"rpm": 1})
        assert other["id"] not in {t["id"] for t in await scoped.list_all("teams")}

    asyncio.run(go())


def test_revoke_rotate_update_delete() -> None:
    store = MemoryStore()

    async def go() -> None:
        admin = Manager(store, clock=lambda: 50.0)
        key = await admin.create("keys", {"name": "a", "models": ["m"]})
        changed = await admin.update("keys", key["id"], b'{"rpm": 7, "models": ["m", "n"]}')
        assert changed["rpm"] == 7 and changed["models"] == ["m", "n"]
        rotated = await admin.rotate(key["id"])
        assert rotated["key"] != key["key"] and rotated["replaces"] == key["id"]
        assert rotated["rpm"] == 7 and store.keys[key["id"]].revoked_at == 50.0
        assert await admin.delete("keys", rotated["id"]) == {"id": rotated["id"], "revoked": True}
        user = await admin.create("users", {"name": "ann", "role": "viewer"})
        assert (await admin.get("users", "ann"))["role"] == "viewer"
        assert (await admin.create("keys", {"user": "ann"}))["role"] == "viewer"
        assert (await admin.create("keys", {"user": "ann", "role": "user"}))["role"] == "user"
        assert (await admin.delete("users", user["id"]))["deleted"] is True
        with pytest.raises(NotFound):
            await admin.get("users", user["id"])

    asyncio.run(go())


def test_team_and_user_names_are_unique() -> None:
    store = MemoryStore()

    async def go() -> None:
        admin = Manager(store)
        await admin.create("teams", {"name": "a"})
        b = await admin.create("teams", {"name": "b"})
        await admin.create("users", {"name": "ann"})
        for kind, body in (("teams", {"name": "a"}), ("users", {"name": "ann"})):
            with pytest.raises(Conflict) as caught:
                await admin.create(kind, body)
            assert caught.value.code == "already_exists" and caught.value.status == 409
        with pytest.raises(Conflict):
            await admin.update("teams", b["id"], {"name": "a"})
        assert (await admin.update("teams", b["id"], {"name": "b"}))["name"] == "b"

    asyncio.run(go())


def test_deleting_a_team_or_user_still_in_use_is_a_409(make_store: Callable[..., Any]) -> None:
    async def body(store: Any) -> None:
        admin = Manager(store, clock=lambda: 50.0)
        team = await admin.create("teams", {"name": "research"})
        user = await admin.create("users", {"name": "ann"})
        key = await admin.create("keys", {"team": "research", "user": "ann"})
        for kind, ident in (("teams", team["id"]), ("users", user["id"])):
            with pytest.raises(Conflict) as caught:
                await admin.delete(kind, ident)
            assert caught.value.status == 409 and caught.value.code == "conflict"
            assert "revoke or move them first" in caught.value.message
        await admin.delete("keys", key["id"])
        assert (await admin.delete("users", "ann"))["deleted"] is True
        assert (await admin.delete("teams", "research"))["deleted"] is True

    with_store(make_store, body)
