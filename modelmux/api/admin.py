"""The admin API: providers and their live state, operator controls, the effective config.

Off (404) unless ``[admin] key`` (or ``viewer_key``) is set, or the listener is loopback with
no key (``api.access``). Reads need the viewer role, changes the admin role; a browser session
also needs its CSRF token. Errors are in OpenAI's shape. Controls are persisted in the
overrides file (``config.overrides``): a breaker opened here stays open until closed here,
and an ``rpm``/``tpm`` set here replaces the configured one from the next reload on (which the
change triggers at once).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec

from modelmux.api.access import require
from modelmux.api.responses import send_json
from modelmux.config.redact import redact
from modelmux.errors import InvalidRequest, NotFound, ServiceUnavailable

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
    require(app.access, exchange, "viewer")
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
    require(app.access, exchange, "admin")
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
    require(app.access, exchange, "admin")
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
    require(app.access, exchange, "viewer")
    body = {"config": redact(msgspec.to_builtins(app.config)), "last_reload": app.last_reload,
            "restart_needed_for": ["server.host", "server.port", "server.workers",
                                   "server.tls (on/off)"],
            "overrides": app.overrides.deployments, "overrides_file": str(app.overrides.path or ""),
            "overrides_problem": app.overrides.problem, "version": app.version}
    await send_json(exchange, 200, body, NO_STORE)
