"""Who is calling a route outside the pipeline (models, health, metrics, admin, count_tokens).

With auth off every function here answers at once and costs nothing; with it on they use the
app's ``Authenticator``, as the authenticate stage does for the doors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmux.errors import ModelMuxError, PermissionDenied
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
    return await app.auth.identify(exchange.headers, exchange.client)


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
        await app.auth.identify(exchange.headers, exchange.client, model)


def visible(identity: Identity | None, models: list[tuple[str, str]],
            aliases: dict[str, str]) -> list[tuple[str, str]]:
    """The (model, owner) pairs ``identity`` may use (all of them with auth off)."""
    if identity is None or identity.kind == "master":
        return models
    return [(m, owner) for m, owner in models if allows(identity, model_names(m, aliases))]


def aliases_of(app: Services) -> dict[str, str]:
    """Public model name -> its alias target (empty with auth off)."""
    return app.auth.aliases if app.auth is not None else {}
