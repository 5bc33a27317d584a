"""The interface every tenancy store offers: teams, users and keys, and revocation fan-out.

Implementations: ``tenancy.sqlite`` (built in; one file, WAL, calls kept off the event loop)
and ``tenancy.postgres`` (asyncpg, for several instances). Both apply their versioned schema
migrations in ``open`` (``modelmux db upgrade`` runs the same step alone). Migrations are kept
per component (``tenancy``, ``spend``, ...) in one ``schema_version`` table, so each part of
the product owns its own tables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from modelmux import errors
from modelmux.tenancy.records import Key, Team, User


class Conflict(errors.Conflict, ValueError):
    """A write a store refuses: a name or key hash already taken, or a team or user deleted
    while active keys or members still name it. A ``ModelMuxError``, so the admin API and the
    CLI answer it as a 409 in their own shape."""


class TenancyStore(Protocol):
    """Teams, users and keys. Lookups by id or by name (teams, users); keys by hash."""

    async def open(self) -> None:
        """Connect and apply pending migrations."""
        ...

    async def close(self) -> None:
        """Release connections; idempotent."""
        ...

    async def create_team(self, team: Team) -> None: ...
    async def get_team(self, id_or_name: str) -> Team | None: ...
    async def list_teams(self) -> list[Team]: ...
    async def update_team(self, id: str, changes: dict[str, Any]) -> Team | None: ...
    async def delete_team(self, id: str) -> bool: ...

    async def create_user(self, user: User) -> None: ...
    async def get_user(self, id_or_name: str) -> User | None: ...
    async def list_users(self, team_id: str | None = None) -> list[User]: ...
    async def update_user(self, id: str, changes: dict[str, Any]) -> User | None: ...
    async def delete_user(self, id: str) -> bool: ...

    async def create_key(self, key: Key) -> None: ...
    async def get_key(self, id: str) -> Key | None: ...
    async def key_by_hash(self, hash: str) -> Key | None: ...
    async def list_keys(self, team_id: str | None = None) -> list[Key]: ...
    async def update_key(self, id: str, changes: dict[str, Any]) -> Key | None: ...
    async def revoke_key(self, id: str, at: float) -> bool:
        """Mark revoked and tell every instance (``on_change``) so caches drop it."""
        ...

    async def touch_keys(self, last_used: dict[str, float]) -> None:
        """Record ``last_used_at`` for many keys at once (batched off the request path)."""
        ...

    def on_change(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(kind, id)`` ("key", "user", "team") when any instance changes or
        revokes a record, so authentication caches drop it within a second.

        This instance's own writes are told before the write call returns; a notice may
        come more than once. ``("*", "")`` means notices may have been missed (a lost
        connection came back): drop every cached record. Callbacks run on the event loop
        and must not block."""
        ...

    def on_write(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(kind, id)`` after each of this process's own writes commits."""
        ...

    def notice(self, kind: str, id: str) -> None:
        """A change heard from another instance (a fan-out): tell ``on_change`` subscribers."""
        ...
