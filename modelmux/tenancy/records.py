"""The records tenancy keeps: teams, users, keys, and the ``Identity`` a request carries.

A team, a user and a key each carry the same limits (``Limited``); a request must pass the
limits of its key, its user and its team. Times are Unix seconds (UTC). A key is stored only
as its hash and a short prefix for recognition; the key itself is shown once, at creation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from msgspec import Struct

ROLES = ("admin", "team_admin", "user", "viewer")
"""admin: everything (the master key is admin); team_admin: its team's keys and usage;
user: calls models; viewer: reads usage and dashboards."""

PERIODS = ("daily", "weekly", "monthly", "total")
"""Budget periods (UTC calendar days, ISO weeks, calendar months, or forever)."""


class Limited(Struct, frozen=True, kw_only=True):
    """The limits a team, a user or a key may carry; None means no limit at that level.

    ``models`` holds model names, aliases or globs (``fnmatch``); None allows every model.
    """

    models: tuple[str, ...] | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None
    max_budget_usd: float | None = None
    budget_period: str = "total"
    metadata: dict[str, Any] = {}
    created_at: float = 0.0


class Team(Limited, frozen=True, kw_only=True):
    """A team: keys and users belong to at most one."""

    id: str
    name: str


class User(Limited, frozen=True, kw_only=True):
    """A person or service; ``role`` applies to keys of this user that set none."""

    id: str
    name: str
    team_id: str | None = None
    role: str = "user"


class Key(Limited, frozen=True, kw_only=True):
    """An API key as stored: ``hash`` is the hex SHA-256 of the whole key, ``prefix`` its
    first characters (safe to show and log)."""

    id: str
    prefix: str
    hash: str
    name: str = ""
    team_id: str | None = None
    user_id: str | None = None
    role: str = "user"
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None


class Identity(Struct, frozen=True, kw_only=True):
    """Who a request is, as the authenticate stage found it (``ctx.identity``).

    ``kind`` is "master", "key" or "jwt"; ``label`` is what logs and metrics may show (a
    key's prefix or id, a JWT's subject), never a credential.
    """

    kind: str
    label: str
    role: str
    key: Key | None = None
    user: User | None = None
    team: Team | None = None

    @property
    def team_id(self) -> str | None:
        """The team this request counts against, if any."""
        if self.team is not None:
            return self.team.id
        return self.key.team_id if self.key is not None else None

    def scopes(self) -> Iterator[tuple[str, str, Limited]]:
        """(scope, id, limits) for every level this request must pass: key, user, team."""
        if self.key is not None:
            yield "key", self.key.id, self.key
        if self.user is not None:
            yield "user", self.user.id, self.user
        if self.team is not None:
            yield "team", self.team.id, self.team
