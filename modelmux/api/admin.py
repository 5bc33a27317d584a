"""``GET /admin/providers``: providers, their deployments and each one's live routing state;
``GET /admin/cache`` (response cache stats) and ``DELETE /admin/cache`` (drop every entry).

Off (404) unless ``[admin] key`` is set; then the request must carry it as
``Authorization: Bearer <key>``: none is a 401, a wrong one a 403, both in OpenAI's error shape.
The key is compared in constant time.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from modelmux.api.responses import send_json
from modelmux.errors import AuthenticationFailed, NotFound, PermissionDenied

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange


def check_admin(app: Services, exchange: Exchange) -> None:
    """Let the request through only with the configured admin key.

    Raises:
        NotFound: no admin key is configured (the admin API is off).
        AuthenticationFailed: no bearer token.
        PermissionDenied: a token that is not the admin key.
    """
    key = app.config.admin.key
    if not key:
        raise NotFound(f"Invalid URL ({exchange.method} {exchange.path}): the admin API is off; "
                       "set [admin] key to turn it on.", code="unknown_url")
    given = exchange.header(b"authorization") or b""
    scheme, _, token = given.partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        raise AuthenticationFailed("The admin API needs `Authorization: Bearer <admin key>`.",
                                   headers=[(b"www-authenticate", b'Bearer realm="modelmux-admin"')])
    if not hmac.compare_digest(token.strip(), key.encode()):
        raise PermissionDenied("That is not the admin key.", code="invalid_admin_key")


async def providers(app: Services, exchange: Exchange) -> None:
    """Each provider with its deployments: breaker, in flight, TTFT EWMA and limits."""
    check_admin(app, exchange)
    deployments = app.router.snapshot()
    out = []
    for provider in app.providers:
        mine = [{"id": ident, **view} for ident, view in deployments.items()
                if view["provider"] == provider.name]
        out.append({"name": provider.name, "type": provider.type, "deployments": mine})
    body = {"object": "list", "strategy": app.router.strategy, "data": out}
    await send_json(exchange, 200, body, [(b"cache-control", b"no-store")])


async def cache(app: Services, exchange: Exchange) -> None:
    """``GET``: the response cache's backend, entries and bytes; ``DELETE``: clear it.

    Raises:
        NotFound: the response cache is off.
    """
    check_admin(app, exchange)
    responses = app.cache
    if responses is None:
        raise NotFound("The response cache is off; set [cache] enabled = true.",
                       code="cache_disabled")
    if exchange.method == "DELETE":
        body: dict[str, object] = {"cleared": await responses.clear()}
    else:
        body = responses.stats()
    await send_json(exchange, 200, body, [(b"cache-control", b"no-store")])
