"""An in-memory ``TenancyStore`` for unit tests of what sits on a store (not a store test)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from modelmux.tenancy.records import Key, Team, User


class MemoryStore:
    def __init__(self) -> None:
        self.teams: dict[str, Team] = {}
        self.users: dict[str, User] = {}
        self.keys: dict[str, Key] = {}
        self.touched: list[dict[str, float]] = []
        self.lookups = 0
        self.opened = self.closed = 0
        self._listeners: list[Callable[[str, str], None]] = []

    async def open(self) -> None:
        self.opened += 1

    async def close(self) -> None:
        self.closed += 1

    def _tell(self, kind: str, ident: str) -> None:
        for listener in self._listeners:
            listener(kind, ident)

    def on_change(self, callback: Callable[[str, str], None]) -> None:
        self._listeners.append(callback)

    def on_write(self, callback: Callable[[str, str], None]) -> None:
        pass

    def notice(self, kind: str, ident: str) -> None:
        self._tell(kind, ident)

    @staticmethod
    def _named(table: dict[str, Any], id_or_name: str) -> Any:
        found = table.get(id_or_name)
        return found or next((r for r in table.values() if r.name == id_or_name), None)

    async def create_team(self, team: Team) -> None:
        self.teams[team.id] = team

    async def get_team(self, id_or_name: str) -> Team | None:
        return self._named(self.teams, id_or_name)  # type: ignore[no-any-return]

    async def list_teams(self) -> list[Team]:
        return list(self.teams.values())

    async def update_team(self, id: str, changes: dict[str, Any]) -> Team | None:
        if id not in self.teams:
            return None
        self.teams[id] = msgspec.structs.replace(self.teams[id], **changes)
        self._tell("team", id)
        return self.teams[id]

    async def delete_team(self, id: str) -> bool:
        self._tell("team", id)
        return self.teams.pop(id, None) is not None

    async def create_user(self, user: User) -> None:
        self.users[user.id] = user

    async def get_user(self, id_or_name: str) -> User | None:
        return self._named(self.users, id_or_name)  # type: ignore[no-any-return]

    async def list_users(self, team_id: str | None = None) -> list[User]:
        return [u for u in self.users.values() if team_id in (None, u.team_id)]

    async def update_user(self, id: str, changes: dict[str, Any]) -> User | None:
        if id not in self.users:
            return None
        self.users[id] = msgspec.structs.replace(self.users[id], **changes)
        self._tell("user", id)
        return self.users[id]

    async def delete_user(self, id: str) -> bool:
        self._tell("user", id)
        return self.users.pop(id, None) is not None

    async def create_key(self, key: Key) -> None:
        self.keys[key.id] = key

    async def get_key(self, id: str) -> Key | None:
        return self.keys.get(id)

    async def key_by_hash(self, hash: str) -> Key | None:
        self.lookups += 1
        return next((k for k in self.keys.values() if k.hash == hash), None)

    async def list_keys(self, team_id: str | None = None) -> list[Key]:
        return [k for k in self.keys.values() if team_id in (None, k.team_id)]

    async def update_key(self, id: str, changes: dict[str, Any]) -> Key | None:
        if id not in self.keys:
            return None
        self.keys[id] = msgspec.structs.replace(self.keys[id], **changes)
        self._tell("key", id)
        return self.keys[id]

    async def revoke_key(self, id: str, at: float) -> bool:
        if id not in self.keys:
            return False
        self.keys[id] = msgspec.structs.replace(self.keys[id], revoked_at=at)
        self._tell("key", id)
        return True

    async def touch_keys(self, last_used: dict[str, float]) -> None:
        self.touched.append(dict(last_used))
