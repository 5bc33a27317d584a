"""The authenticate stage: who the caller is, and whether it may use the model it asked for.

Built only when ``[auth] mode = "keys"``; with auth off a request meets no stage of this kind.
"""

from __future__ import annotations

from modelmux.errors import PermissionDenied
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Stage
from modelmux.tenancy.access import allows
from modelmux.tenancy.authn import Authenticator
from modelmux.tenancy.records import Identity


def model_names(model: str, aliases: dict[str, str]) -> tuple[str, ...]:
    """The names a model list may match: the name asked for and its alias's target."""
    target = aliases.get(model)
    return (model,) if target is None or target == model else (model, target)


def check_model(identity: Identity, model: str, aliases: dict[str, str]) -> None:
    """Raises:
        PermissionDenied: ``model`` is outside the key's, user's or team's list (403,
            ``model_not_allowed``).
    """
    if not allows(identity, model_names(model, aliases)):
        raise PermissionDenied(f"This API key may not use the model `{model}`.",
                               param="model", code="model_not_allowed")


class AuthenticateStage(Stage):
    """Sets ``ctx.identity``; refuses a caller without a valid credential (401), one throttled
    for failing too often (429), or one asking for a model it may not use (403)."""

    kind = "authenticate"
    name = "authenticate"

    def __init__(self, authenticator: Authenticator, aliases: dict[str, str]) -> None:
        self.authenticator = authenticator
        self.aliases = aliases

    async def on_request(self, ctx: RequestContext) -> None:
        """Raises:
            AuthenticationFailed, RateLimited: see ``Authenticator.identify``.
            PermissionDenied: see ``check_model``.
        """
        identity = ctx.identity = await self.authenticator.identify(ctx.headers, ctx.client)
        if identity.kind != "master":
            check_model(identity, ctx.request.model, self.aliases)
