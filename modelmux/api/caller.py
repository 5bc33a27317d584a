"""Who is calling a route outside the pipeline (models, health, metrics, admin, count_tokens).

With auth off every function here answers at once and costs nothing; with it on they use the
app's ``Authenticator``, as the authenticate stage does for the doors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmux.errors import ModelMuxError, PermissionDenied
from modelmux.pipeline.admit import AdmitStage
from modelmux.pipeline.ratelimits import describe
from modelmux.tenancy.access import allows, model_names

if TYPE_CHECKING:
    from collections.abc import Iterable

    from modelmux.api.services import Services
    from modelmux.server.exchange import Exchange
    from modelmux.tenancy.records import Identity


async def caller(app: Services, exchange: Exchange) -> Identity | None:
    """The caller's identity; None when auth is off.

    Raises:
        AuthenticationFailed, RateLimited: see ``Authenticator.identify``.
    """
    if app.auth is None:
        return None
    identity = await app.auth.identify(exchange.headers, exchange.client)
    describe_limits(app, exchange, identity)
    return identity


_LIMIT_NAMES = (b"x-ratelimit-limit-requests", b"x-ratelimit-limit-tokens")


def describe_limits(app: Services, exchange: Exchange, identity: Identity | None = None
                    ) -> None:
    """Add a limited caller's ``x-ratelimit-*`` headers to an answer that met no limit check
    (a model list, count_tokens, a refusal before admission): its scopes' state now, nothing
    counted. ``identity`` None: the one the credential cache holds, if any. No headers when
    the answer already has them, or the caller has no rpm or tpm."""
    auth = app.auth
    if auth is None:
        return
    if identity is None:
        entry = auth.fast(exchange.headers)
        if entry is None:
            return
        identity = entry.identity
    headers = exchange.extra_headers
    if any(name in _LIMIT_NAMES for name, _ in headers):
        return
    for stage in app.pipeline.stages:
        if isinstance(stage, AdmitStage):
            meters = stage.meters(identity)
            if meters:
                describe(stage.limits.available, meters, headers)
            return


async def known_caller(app: Services, exchange: Exchange) -> Identity | None:
    """The caller's identity, or None for an anonymous or refused one (never raises)."""
    if app.auth is None or (exchange.header(b"authorization") is None
                            and exchange.header(b"x-api-key") is None):
        return None
    try:
        return await app.auth.identify(exchange.headers, exchange.client)
    except ModelMuxError:
        return None


def require_role(identity: Identity, roles: Iterable[str], what: str) -> None:
    """Raises:
        PermissionDenied: ``identity``'s role is not one of ``roles`` (403).
    """
    if identity.role not in roles:
        raise PermissionDenied(f"This credential (role {identity.role}) may not {what}.")


async def check_model_access(app: Services, exchange: Exchange, model: str) -> None:
    """For routes outside the pipeline that name a model (count_tokens).

    Raises:
        AuthenticationFailed, RateLimited, PermissionDenied: as the authenticate stage.
    """
    if app.auth is not None:
        identity = await app.auth.identify(exchange.headers, exchange.client, model)
        describe_limits(app, exchange, identity)


def visible(identity: Identity | None, models: list[tuple[str, str]],
            aliases: dict[str, str]) -> list[tuple[str, str]]:
    """The (model, owner) pairs ``identity`` may use (all of them with auth off)."""
    if identity is None or identity.kind == "master":
        return models
    return [(m, owner) for m, owner in models if allows(identity, model_names(m, aliases))]


def aliases_of(app: Services) -> dict[str, str]:
    """Public model name -> its alias target (empty with auth off)."""
    return app.auth.aliases if app.auth is not None else {}
