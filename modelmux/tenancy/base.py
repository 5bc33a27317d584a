"""``StoreBase``: the ``TenancyStore`` methods written once over a few primitives per kind.

A store implements ``_insert``, ``_find``, ``_all``, ``_update``, ``_delete``, ``_revoke`` and
``touch_keys`` for its database; this base turns them into the per-record methods of the
protocol and tells ``on_change`` subscribers of every write this process makes.
"""

from __future__ import annotations

from typing import Any

from modelmux.tenancy import rows
from modelmux.tenancy.changes import Callback, Callbacks
from modelmux.tenancy.records import Key, Team, User


class StoreBase:
    """Shared glue: the subclass does the I/O, this class the naming and the local notices."""

    def __init__(self) -> None:
        self._callbacks = Callbacks()
        self._writes = Callbacks()

    def on_change(self, callback: Callback) -> None:
        self._callbacks.add(callback)

    def on_write(self, callback: Callback) -> None:
        """Call ``callback(kind, id)`` after each write of this process commits (not for
        other instances' notices): what a fan-out such as ``tenancy.fanout`` publishes."""
        self._writes.add(callback)

    def notice(self, kind: str, id: str) -> None:
        """A change heard from elsewhere (another instance's notice): tell subscribers."""
        self._callbacks.fire(kind, id)

    def _changed(self, kind: str, id: str) -> None:
        """Tell subscribers: after this process's write committed, or on another's notice."""
        self._callbacks.fire(kind, id)

    def _wrote(self, kind: str, id: str) -> None:
        """This process's write committed: tell subscribers and the fan-outs."""
        self._callbacks.fire(kind, id)
        self._writes.fire(kind, id)

    async def _insert(self, kind: str, record: Any) -> None:
        raise NotImplementedError

    async def _find(self, kind: str, column: str, value: str) -> Any:
        raise NotImplementedError

    async def _all(self, kind: str, team_id: str | None) -> list[Any]:
        raise NotImplementedError

    async def _update(self, kind: str, id: str, changes: dict[str, Any]) -> Any:
        raise NotImplementedError

    async def _delete(self, kind: str, id: str) -> bool:
        raise NotImplementedError

    async def _revoke(self, id: str, at: float) -> bool:
        raise NotImplementedError

    async def _by_id_or_name(self, kind: str, id_or_name: str) -> Any:
        found = await self._find(kind, "id", id_or_name)
        if found is None:
            found = await self._find(kind, "name", id_or_name)
        return found

    async def create_team(self, team: Team) -> None:
        """Raises: Conflict (the id or name is taken), ValueError (an unknown budget period)."""
        await self._insert("team", rows.created(team))

    async def get_team(self, id_or_name: str) -> Team | None:
        team: Team | None = await self._by_id_or_name("team", id_or_name)
        return team

    async def list_teams(self) -> list[Team]:
        return await self._all("team", None)

    async def update_team(self, id: str, changes: dict[str, Any]) -> Team | None:
        """None for an unknown id. Raises: ValueError (a bad field), Conflict (a taken name)."""
        team: Team | None = await self._update("team", id, changes)
        return team

    async def delete_team(self, id: str) -> bool:
        """Raises: Conflict while the team still has users or unrevoked keys."""
        return await self._delete("team", id)

    async def create_user(self, user: User) -> None:
        """Raises: Conflict (the id or name is taken), ValueError (an unknown role or period)."""
        await self._insert("user", rows.created(user))

    async def get_user(self, id_or_name: str) -> User | None:
        user: User | None = await self._by_id_or_name("user", id_or_name)
        return user

    async def list_users(self, team_id: str | None = None) -> list[User]:
        return await self._all("user", team_id)

    async def update_user(self, id: str, changes: dict[str, Any]) -> User | None:
        user: User | None = await self._update("user", id, changes)
        return user

    async def delete_user(self, id: str) -> bool:
        """Raises: Conflict while the user still has unrevoked keys."""
        return await self._delete("user", id)

    async def create_key(self, key: Key) -> None:
        """Raises: Conflict (the id or hash is taken), ValueError (an unknown role or period)."""
        await self._insert("key", rows.created(key))

    async def get_key(self, id: str) -> Key | None:
        key: Key | None = await self._find("key", "id", id)
        return key

    async def key_by_hash(self, hash: str) -> Key | None:
        key: Key | None = await self._find("key", "hash", hash)
        return key

    async def list_keys(self, team_id: str | None = None) -> list[Key]:
        return await self._all("key", team_id)

    async def update_key(self, id: str, changes: dict[str, Any]) -> Key | None:
        key: Key | None = await self._update("key", id, changes)
        return key

    async def revoke_key(self, id: str, at: float) -> bool:
        """False for an unknown id. The first revocation time is kept; revoking again still
        tells every instance."""
        return await self._revoke(id, at)
