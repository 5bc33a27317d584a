"""``/admin/teams``, ``/admin/users`` and ``/admin/keys``: create (POST, 201), list (GET),
read, change (PATCH) and remove (DELETE) by id; ``POST /admin/keys/{id}/rotate`` replaces a
key. Answers never hold a key's hash; a created or rotated key's answer holds the key, once.

Needs ``[auth] mode = "keys"`` (else 404). Admins see everything, a team admin its own team's
users and keys; every other caller gets a 403.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmux.api.admin_gate import admin_scope
from modelmux.api.responses import send_json
from modelmux.errors import MethodNotAllowed, NotFound
from modelmux.tenancy.manage import Manager

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange

PREFIXES = {f"/admin/{kind}/": kind for kind in ("teams", "users", "keys")}
_NO_STORE = [(b"cache-control", b"no-store")]


async def _manager(app: Services, exchange: Exchange) -> Manager:
    if app.auth is None:
        raise NotFound(f"Invalid URL ({exchange.method} {exchange.path}): teams, users and keys "
                       "need [auth] mode = \"keys\".", code="unknown_url")
    scope = await admin_scope(app, exchange, team_admin=True)
    await app.auth.open()
    return Manager(app.auth.store, scope)


def _kind(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[1]


async def collection(app: Services, exchange: Exchange) -> None:
    """``GET`` lists, ``POST`` creates."""
    manager = await _manager(app, exchange)
    kind = _kind(exchange.path)
    if exchange.method == "POST":
        created = await manager.create(kind, await exchange.read_body())
        await send_json(exchange, 201, created, _NO_STORE)
        return
    await send_json(exchange, 200, {"object": "list", "data": await manager.list_all(kind)},
                    _NO_STORE)


async def item(app: Services, exchange: Exchange) -> None:
    """``GET``, ``PATCH`` and ``DELETE`` one record; ``POST .../rotate`` for a key."""
    manager = await _manager(app, exchange)
    prefix = next(p for p in PREFIXES if exchange.path.startswith(p))
    kind, ident = PREFIXES[prefix], exchange.path[len(prefix):]
    method = exchange.method
    if method == "POST":
        ident, _, action = ident.rpartition("/")
        if kind != "keys" or action != "rotate" or not ident:
            raise MethodNotAllowed(f"Method POST is not allowed for {exchange.path}.",
                                   headers=[(b"allow", b"GET, PATCH, DELETE, OPTIONS")])
        await send_json(exchange, 201, await manager.rotate(ident), _NO_STORE)
    elif method == "PATCH":
        await send_json(exchange, 200, await manager.update(kind, ident,
                                                            await exchange.read_body()), _NO_STORE)
    elif method == "DELETE":
        await send_json(exchange, 200, await manager.delete(kind, ident), _NO_STORE)
    else:
        await send_json(exchange, 200, await manager.get(kind, ident), _NO_STORE)
