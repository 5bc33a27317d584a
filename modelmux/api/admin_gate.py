"""The one gate of the admin API and dashboard: who is calling, with which role.

Credentials, in order: a dashboard session cookie (``api.access``; a change also needs its
CSRF token and same-origin ``Origin``); a bearer that is ``[admin] key`` or ``viewer_key``;
with ``[auth] mode = "keys"``, any credential the authenticator knows (master key, API keys,
JWTs) with its role: admin, viewer, or team_admin where an endpoint allows its own team.
Reads need a viewer, changes an admin. Off (404) when nothing is configured and the listener
is not loopback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmux.api.access import RANK, require
from modelmux.errors import PermissionDenied

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange

ADMIN = "admin"
TEAM_ADMIN = "team_admin"


def needed(exchange: Exchange) -> str:
    """The role a request needs: viewer to read, admin to change."""
    return "viewer" if exchange.method in ("GET", "HEAD") else ADMIN


async def role_of_token(app: Services, token: bytes, exchange: Exchange
                        ) -> tuple[str, str | None]:
    """(role, team id) of a bearer credential: an ``[admin]`` key, else the authenticator's.

    Raises:
        AuthenticationFailed, RateLimited: the authenticator refuses it.
        PermissionDenied: a wrong key without ``[auth]``.
    """
    found = app.access.role_of_key(token)
    if found is not None:
        return found, None
    if app.auth is None:
        return require(app.access, exchange, "viewer"), None  # counts and refuses a wrong key
    identity = await app.auth.identify([(b"authorization", b"Bearer " + token)], exchange.client)
    return identity.role, identity.team_id


async def gate(app: Services, exchange: Exchange, role: str, *, team_admin: bool = False
               ) -> str | None:
    """Let the caller through with ``role`` (or as a team admin where ``team_admin``);
    returns the team a team admin is limited to (None: everything).

    Raises:
        NotFound: the admin API is off.
        AuthenticationFailed: no credential, or one nobody knows (401).
        RateLimited: the address gave too many wrong keys.
        PermissionDenied: a credential that may not act here, or a session change without its
            CSRF token or from another origin (403).
    """
    given = exchange.header(b"authorization")
    if given is None or app.auth is None:
        require(app.access, exchange, role)
        return None
    scheme, _, token = given.partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        require(app.access, exchange, role)  # raises the 401 with its challenge
    found, team = await role_of_token(app, token.strip(), exchange)
    if found in RANK and RANK[found] >= RANK[role]:
        return None
    if team_admin and found == TEAM_ADMIN and team is not None:
        return team
    raise PermissionDenied(f"This credential (role {found}) may not use {exchange.path}.",
                           code="permission_denied")


async def admin_scope(app: Services, exchange: Exchange, *, team_admin: bool = False
                      ) -> str | None:
    """``gate`` with the role the method needs (viewer reads, admin changes)."""
    return await gate(app, exchange, needed(exchange), team_admin=team_admin)
