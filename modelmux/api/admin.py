"""The admin API: providers and their live state, operator controls, the effective config,
the response cache (``GET``/``DELETE /admin/cache``) and ``GET /admin/usage``: spend log
totals by key, team, user, model, provider or day (``forecast=true`` adds budget forecasts).

Who may call is ``api.admin_gate``'s: reads need a viewer, changes an admin (a team admin
reads its own team's usage). Errors are in OpenAI's shape. Controls are persisted in the
overrides file (``config.overrides``): a breaker opened here stays open until closed here,
and an ``rpm``/``tpm`` set here replaces the configured one from the next reload on (which the
change triggers at once).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import msgspec

from modelmux.api.admin_gate import gate
from modelmux.api.responses import send_json
from modelmux.config.redact import redact
from modelmux.errors import InvalidRequest, NotFound, ServiceUnavailable
from modelmux.spend.db import GROUPS
from modelmux.spend.db import usage as db_usage
from modelmux.spend.forecast import forecasts
from modelmux.spend.periods import period_bounds
from modelmux.spend.report import as_csv, forecast, parse_time

if TYPE_CHECKING:
    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange

log = logging.getLogger("modelmux.admin")

NO_STORE = [(b"cache-control", b"no-store")]
MAX_CONTROL_BODY = 4096


class BreakerChange(msgspec.Struct, forbid_unknown_fields=True):
    deployment: str
    state: str


class LimitsChange(msgspec.Struct, forbid_unknown_fields=True):
    deployment: str
    rpm: int | None = None
    tpm: int | None = None


def deployments_view(app: Services) -> list[dict[str, Any]]:
    """Each provider with its deployments: live state plus the operator's overrides."""
    deployments = app.router.snapshot()
    overrides = app.overrides.deployments
    configured = app.models.configured
    out = []
    for provider in app.providers:
        mine = []
        for ident, view in deployments.items():
            if view["provider"] != provider.name:
                continue
            spec = configured.get(ident)
            mine.append({"id": ident, **view, "overrides": overrides.get(ident, {}),
                         "configured": {"rpm": spec.rpm if spec else None,
                                        "tpm": spec.tpm if spec else None}})
        out.append({"name": provider.name, "type": provider.type, "deployments": mine})
    return out


async def providers(app: Services, exchange: Exchange) -> None:
    """Each provider with its deployments: breaker, in flight, TTFT EWMA, limits, overrides."""
    await gate(app, exchange, "viewer")
    body = {"object": "list", "strategy": app.router.strategy, "data": deployments_view(app)}
    await send_json(exchange, 200, body, NO_STORE)


async def _decode(exchange: Exchange, kind: type[Any]) -> Any:
    body = await exchange.read_body()
    if len(body) > MAX_CONTROL_BODY:
        raise InvalidRequest("The request body is too large for a control.")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"Invalid control: {exc}") from None
    except msgspec.DecodeError:
        raise InvalidRequest("The body must be a JSON object.") from None


def _known(app: Services, ident: str) -> None:
    if ident not in app.router.live:
        raise NotFound(f"No deployment `{ident}`.", param="deployment", code="unknown_deployment")


async def set_breaker(app: Services, exchange: Exchange) -> None:
    """``{"deployment": "p/m", "state": "open"|"closed"}``: hold a circuit open, or close it."""
    await gate(app, exchange, "admin")
    change = await _decode(exchange, BreakerChange)
    _known(app, change.deployment)
    if change.state not in ("open", "closed"):
        raise InvalidRequest("`state` must be `open` or `closed`.", param="state")
    app.router.force(change.deployment, change.state)
    _persist(app, change.deployment, breaker="open" if change.state == "open" else None)
    log.info("admin: breaker of %s forced %s", change.deployment, change.state)
    await send_json(exchange, 200, {"deployment": change.deployment,
                                    "breaker": app.router.live[change.deployment]
                                    .breaker.snapshot(app.router.clock())}, NO_STORE)


async def set_limits(app: Services, exchange: Exchange) -> None:
    """``{"deployment": "p/m", "rpm": 10, "tpm": null}``: replace the deployment's limits
    (null: back to the configured value) and reload so they apply."""
    await gate(app, exchange, "admin")
    change = await _decode(exchange, LimitsChange)
    _known(app, change.deployment)
    for name, value in (("rpm", change.rpm), ("tpm", change.tpm)):
        if value is not None and value <= 0:
            raise InvalidRequest(f"`{name}` must be a positive integer or null.", param=name)
    reload = app.reload
    if reload is None:
        raise ServiceUnavailable("Limits can only change in a serving process (it reloads).")
    _persist(app, change.deployment, rpm=change.rpm, tpm=change.tpm)
    log.info("admin: limits of %s set to rpm=%s tpm=%s", change.deployment, change.rpm, change.tpm)
    ok, text = await reload()
    await send_json(exchange, 200 if ok else 409, {"deployment": change.deployment,
                                                   "reloaded": ok, "result": text}, NO_STORE)


def _persist(app: Services, ident: str, **fields: Any) -> None:
    try:
        app.overrides.update(ident, **fields)
    except OSError as exc:
        log.error("cannot write the overrides file %s: %s", app.overrides.path, exc)
        raise ServiceUnavailable("The override applies now but could not be saved; see the "
                                 "server log.") from None


async def config(app: Services, exchange: Exchange) -> None:
    """The effective configuration (secrets redacted), the last reload and the overrides."""
    await gate(app, exchange, "viewer")
    body = {"config": redact(msgspec.to_builtins(app.config)), "last_reload": app.last_reload,
            "restart_needed_for": ["server.host", "server.port", "server.workers",
                                   "server.tls (on/off)"],
            "overrides": app.overrides.deployments, "overrides_file": str(app.overrides.path or ""),
            "overrides_problem": app.overrides.problem, "version": app.version}
    await send_json(exchange, 200, body, NO_STORE)


async def cache(app: Services, exchange: Exchange) -> None:
    """``GET``: the response cache's backend, entries and bytes; ``DELETE``: clear it.

    Raises:
        NotFound: the response cache is off.
    """
    await gate(app, exchange, "viewer" if exchange.method == "GET" else "admin")
    responses = app.cache
    if responses is None:
        raise NotFound("The response cache is off; set [cache] enabled = true.",
                       code="cache_disabled")
    if exchange.method == "DELETE":
        body: dict[str, object] = {"cleared": await responses.clear()}
    else:
        body = responses.stats()
    await send_json(exchange, 200, body, NO_STORE)


async def usage(app: Services, exchange: Exchange) -> None:
    """``GET /admin/usage?group_by=…&since=…&until=…[&format=csv]``: spend log totals (a team
    admin sees its own team's only)."""
    team = await gate(app, exchange, "viewer", team_admin=True)
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
    flag = query.get("forecast", "false").lower()
    if flag not in ("true", "false", "1", "0"):
        raise InvalidRequest("forecast must be true or false.", param="forecast",
                             code="invalid_value")
    wants_forecast = flag in ("true", "1")
    if wants_forecast and fmt == "csv":
        raise InvalidRequest("forecast=true needs format=json.", param="forecast",
                             code="invalid_value")
    if fmt not in ("json", "csv"):
        raise InvalidRequest("format must be json or csv.", param="format",
                             code="invalid_value")
    if spend.log is not None:
        await spend.log.flush()  # what this instance answered so far is in the answer
    rows = await spend.store.run(db_usage, group_by, since, until, team)
    if fmt == "csv":
        await exchange.respond(200, [(b"content-type", b"text/csv; charset=utf-8"),
                                     (b"cache-control", b"no-store")], as_csv(rows).encode())
        return
    body: dict[str, Any] = {"object": "list", "group_by": group_by, "since": since,
                            "until": until, "data": rows}
    if wants_forecast:
        body.update(await _forecast(spend, now, team))
    await send_json(exchange, 200, body, [(b"cache-control", b"no-store")])


async def _forecast(spend: Any, now: float, team: str | None) -> dict[str, Any]:
    """The fields ``modelmux usage --forecast`` adds: this month's spend so far and its
    projection (the whole gateway's; not for a team admin), and each budget's forecast."""
    assert spend.store is not None
    budget = spend.config.analytics.cost_tracking.monthly_budget
    out: dict[str, Any] = {}
    if team is None:
        month = await spend.store.run(db_usage, "model", period_bounds("monthly", now)[0],
                                      now + 1)
        spent = sum(r["cost_usd"] for r in month)
        out = {"month_to_date_usd": round(spent, 6),
               "forecast_usd": round(forecast(spent, "monthly", now), 6),
               "monthly_budget": budget}
    out["forecasts"] = await forecasts(spend.store.run, await spend.store.opened(),
                                       None if team is not None else budget, now, team)
    return out
