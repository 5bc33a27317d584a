"""``GET /admin/providers``: providers, their deployments and each one's live routing state;
``GET /admin/usage``: spend log totals by key, team, user, model, provider or day.

Off (404) unless ``[admin] key`` is set; then the request must carry it as
``Authorization: Bearer <key>``: none is a 401, a wrong one a 403, both in OpenAI's error shape.
The key is compared in constant time.
"""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from modelmux.api.responses import send_json
from modelmux.errors import AuthenticationFailed, InvalidRequest, NotFound, PermissionDenied
from modelmux.spend.db import GROUPS
from modelmux.spend.db import usage as db_usage
from modelmux.spend.periods import period_bounds
from modelmux.spend.report import as_csv, parse_time

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


async def usage(app: Services, exchange: Exchange) -> None:
    """``GET /admin/usage?group_by=…&since=…&until=…[&format=csv]``: spend log totals."""
    check_admin(app, exchange)
    spend = app.spend
    if spend is None or spend.store is None:
        raise NotFound("The spend log is off: set [analytics] spend_log = true (or turn on "
                       "[auth] mode = \"keys\").", code="spend_log_off")
    query = dict(parse_qsl(exchange.query, keep_blank_values=True))
    group_by = query.get("group_by", "model")
    if group_by not in GROUPS:
        raise InvalidRequest(f"group_by must be one of {', '.join(GROUPS)}.", param="group_by",
                             code="invalid_value")
    now = time.time()
    try:
        since = parse_time(query["since"], now) if "since" in query else \
            period_bounds("monthly", now)[0]
        until = parse_time(query["until"], now) if "until" in query else now + 1
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="since" if "since" in query else "until",
                             code="invalid_value") from None
    fmt = query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise InvalidRequest("format must be json or csv.", param="format",
                             code="invalid_value")
    if spend.log is not None:
        await spend.log.flush()  # what this instance answered so far is in the answer
    rows = await spend.store.run(db_usage, group_by, since, until)
    if fmt == "csv":
        await exchange.respond(200, [(b"content-type", b"text/csv; charset=utf-8"),
                                     (b"cache-control", b"no-store")], as_csv(rows).encode())
        return
    await send_json(exchange, 200, {"object": "list", "group_by": group_by, "since": since,
                                    "until": until, "data": rows},
                    [(b"cache-control", b"no-store")])
