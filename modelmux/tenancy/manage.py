"""Creating, reading, changing and removing teams, users and keys on a ``TenancyStore``, as the
admin API and ``modelmux keys|teams|users --store`` both do it.

``scope`` is the team a team_admin may act on (None: everything, for an admin). Bodies are
JSON values checked here; answers are plain dicts that never hold a key's hash, and hold the
key itself only in the answer that created it.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import msgspec
from msgspec import UNSET, Struct, UnsetType

from modelmux.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from modelmux.tenancy.keys import generate_key, mint, new_id
from modelmux.tenancy.records import PERIODS, ROLES, Key, Team, User
from modelmux.tenancy.store import TenancyStore

Record = Team | User | Key
KINDS = ("teams", "users", "keys")
TEAM_GRANTS = ("user", "team_admin")
"""The roles a team admin may give: admin and viewer (a read-only admin of every team) are
an admin's to grant."""


class _Limits(Struct, forbid_unknown_fields=True, kw_only=True):
    models: list[str] | None | UnsetType = UNSET
    rpm: int | None | UnsetType = UNSET
    tpm: int | None | UnsetType = UNSET
    max_parallel: int | None | UnsetType = UNSET
    max_budget_usd: float | None | UnsetType = UNSET
    budget_period: str | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET


class TeamBody(_Limits, forbid_unknown_fields=True, kw_only=True):
    name: str | UnsetType = UNSET


class UserBody(_Limits, forbid_unknown_fields=True, kw_only=True):
    name: str | UnsetType = UNSET
    team: str | None | UnsetType = UNSET
    role: str | UnsetType = UNSET


class KeyBody(_Limits, forbid_unknown_fields=True, kw_only=True):
    name: str | UnsetType = UNSET
    team: str | None | UnsetType = UNSET
    user: str | None | UnsetType = UNSET
    role: str | UnsetType = UNSET
    expires_at: float | str | None | UnsetType = UNSET


_BODIES: dict[str, type[_Limits]] = {"teams": TeamBody, "users": UserBody, "keys": KeyBody}
_ID_KIND = {"teams": "team", "users": "user", "keys": "key"}


def view(record: Record) -> dict[str, Any]:
    """A record as the admin API shows it: a key without its hash."""
    out: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(record))
    out.pop("hash", None)
    return out


def _decode(kind: str, body: bytes | dict[str, Any]) -> _Limits:
    try:
        if isinstance(body, bytes):
            return msgspec.json.decode(body or b"{}", type=_BODIES[kind])
        return msgspec.convert(body, _BODIES[kind])
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"Invalid {kind[:-1]}: {exc}", code="invalid_value") from None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}",
                             code="invalid_json") from None


def _when(value: float | str | None) -> float | None:
    if value is None or isinstance(value, (int, float)):
        return value
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"expires_at: {value!r} is neither Unix seconds nor an ISO 8601 "
                             "time.", param="expires_at", code="invalid_value") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


class Manager:
    """Admin operations on ``store`` for a caller limited to team ``scope`` (None: all)."""

    def __init__(self, store: TenancyStore, scope: str | None = None,
                 clock: Any = time.time) -> None:
        self.store = store
        self.scope = scope
        self.clock = clock

    async def create(self, kind: str, body: bytes | dict[str, Any]) -> dict[str, Any]:
        """Create a team, user or key; a key's answer holds the key (the only time).

        Raises:
            InvalidRequest: a bad field. PermissionDenied: outside the caller's team.
            Conflict: the name is taken.
        """
        fields = await self._changes(kind, _decode(kind, body))
        now = self.clock()
        ident = new_id(_ID_KIND[kind])
        if kind == "teams":
            self._admin_only("create teams")
            if "name" not in fields:
                raise InvalidRequest("A team needs a `name`.", param="name")
            await self._name_free(kind, fields["name"])
            team = Team(id=ident, created_at=now, **fields)
            await self.store.create_team(team)
            return view(team)
        fields.setdefault("team_id", self.scope)
        if kind == "users":
            if "name" not in fields:
                raise InvalidRequest("A user needs a `name`.", param="name")
            await self._name_free(kind, fields["name"])
            user = User(id=ident, created_at=now, **fields)
            await self.store.create_user(user)
            return view(user)
        if "role" not in fields and fields.get("user_id"):  # a user's role is its keys' default
            owner = await self.store.get_user(fields["user_id"])
            if owner is not None:
                fields["role"] = owner.role
                if owner.role not in TEAM_GRANTS:
                    self._admin_only(f"make a key with the {owner.role} role")
        secret, key = mint(created_at=now, **fields)
        await self.store.create_key(key)
        return {**view(key), "key": secret}

    async def list_all(self, kind: str) -> list[dict[str, Any]]:
        """Every record of ``kind`` the caller may see."""
        if kind == "teams":
            teams = await self.store.list_teams()
            return [view(t) for t in teams if self.scope in (None, t.id)]
        if kind == "users":
            return [view(u) for u in await self.store.list_users(self.scope)]
        return [view(k) for k in await self.store.list_keys(self.scope)]

    async def get(self, kind: str, ident: str) -> dict[str, Any]:
        """Raises: NotFound: no such record the caller may see."""
        return view(await self._find(kind, ident))

    async def update(self, kind: str, ident: str, body: bytes | dict[str, Any]) -> dict[str, Any]:
        """Change the fields ``body`` names.

        Raises:
            NotFound, InvalidRequest, PermissionDenied; Conflict: the new name is taken.
        """
        record = await self._find(kind, ident)
        if kind == "teams":
            self._admin_only("change teams")
        changes = await self._changes(kind, _decode(kind, body))
        if kind != "keys" and "name" in changes:
            await self._name_free(kind, changes["name"], record.id)
        update = {"teams": self.store.update_team, "users": self.store.update_user,
                  "keys": self.store.update_key}[kind]
        changed = await update(record.id, changes)
        if changed is None:
            raise self._missing(kind, ident)
        return view(changed)

    async def delete(self, kind: str, ident: str) -> dict[str, Any]:
        """Delete a team or user; revoke a key (it stays listed, with ``revoked_at``).

        Raises: NotFound, PermissionDenied; Conflict: a team or user that active keys (or a
        team's users) still name.
        """
        record = await self._find(kind, ident)
        if kind == "keys":
            await self.store.revoke_key(record.id, self.clock())
            return {"id": record.id, "revoked": True}
        if kind == "teams":
            self._admin_only("delete teams")
            await self.store.delete_team(record.id)
        else:
            await self.store.delete_user(record.id)
        return {"id": record.id, "deleted": True}

    async def rotate(self, ident: str) -> dict[str, Any]:
        """A new key with the same settings as key ``ident``, which is revoked.

        Raises: NotFound, PermissionDenied.
        """
        old = await self._find("keys", ident)
        assert isinstance(old, Key)
        if old.role not in TEAM_GRANTS:
            self._admin_only(f"rotate a key with the {old.role} role")
        new = generate_key()
        key = msgspec.structs.replace(
            old, id=new_id(_ID_KIND["keys"]), prefix=new.prefix, hash=new.hash,
            created_at=self.clock(), last_used_at=None, revoked_at=None)
        await self.store.create_key(key)
        await self.store.revoke_key(old.id, self.clock())
        return {**view(key), "key": new.secret, "replaces": old.id}

    async def _find(self, kind: str, ident: str) -> Record:
        found: Record | None
        if kind == "teams":
            found = await self.store.get_team(ident)
            team = found.id if found is not None else None
        elif kind == "users":
            found = await self.store.get_user(ident)
            team = found.team_id if found is not None else None
        else:
            found = await self.store.get_key(ident)
            team = found.team_id if found is not None else None
        if found is None or (self.scope is not None and team != self.scope):
            raise self._missing(kind, ident)
        return found

    async def _name_free(self, kind: str, name: str, mine: str | None = None) -> None:
        """Raises: Conflict: another team (or user) has ``name`` (names are unique)."""
        get = self.store.get_team if kind == "teams" else self.store.get_user
        found = await get(name)
        if found is not None and found.id != mine:
            raise Conflict(f"A {kind[:-1]} named {name!r} exists already.",
                           param="name", code="already_exists")

    @staticmethod
    def _missing(kind: str, ident: str) -> NotFound:
        return NotFound(f"No {kind[:-1]} {ident!r}.", code=f"{kind[:-1]}_not_found")

    def _admin_only(self, what: str) -> None:
        if self.scope is not None:
            raise PermissionDenied(f"Only an admin may {what}.")

    async def _changes(self, kind: str, body: _Limits) -> dict[str, Any]:
        """``body``'s set fields as record fields, checked (team and user names resolved)."""
        out: dict[str, Any] = {}
        for name in body.__struct_fields__:
            value = getattr(body, name)
            if value is not UNSET:
                out[name] = value
        if "models" in out and out["models"] is not None:
            out["models"] = tuple(out["models"])
        for name in ("rpm", "tpm", "max_parallel", "max_budget_usd"):
            if out.get(name) is not None and out[name] < 0:
                raise InvalidRequest(f"`{name}` must not be negative.", param=name)
        if out.get("budget_period", "total") not in PERIODS:
            raise InvalidRequest(f"`budget_period` must be one of {', '.join(PERIODS)}.",
                                 param="budget_period")
        role = out.get("role")
        if role is not None and role not in ROLES:
            raise InvalidRequest(f"`role` must be one of {', '.join(ROLES)}.", param="role")
        if role is not None and role not in TEAM_GRANTS:
            self._admin_only(f"grant the {role} role")
        if "name" in out and not out["name"]:
            raise InvalidRequest("`name` must not be empty.", param="name")
        if "expires_at" in out:
            out["expires_at"] = _when(out["expires_at"])
        if "team" in out:
            out["team_id"] = await self._team_id(out.pop("team"))
        if "user" in out:
            name = out.pop("user")
            user = await self.store.get_user(name) if name is not None else None
            if name is not None and (user is None or self.scope not in (None, user.team_id)):
                raise InvalidRequest(f"No user {name!r}.", param="user", code="user_not_found")
            out["user_id"] = user.id if user is not None else None
        return out

    async def _team_id(self, name: str | None) -> str | None:
        if name is None:
            if self.scope is not None:
                raise PermissionDenied("A team admin's records stay in its team.")
            return None
        team = await self.store.get_team(name)
        if team is None:
            raise InvalidRequest(f"No team {name!r}.", param="team", code="team_not_found")
        if self.scope is not None and team.id != self.scope:
            raise PermissionDenied("A team admin may act only on its own team.")
        return team.id

