"""The authenticate stage: who the caller is, and whether it may use the model it asked for.

Built only when ``[auth] mode = "keys"``; with auth off a request meets no stage of this kind.
"""

from __future__ import annotations

from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Stage
from modelmux.tenancy.authn import Authenticator


class AuthenticateStage(Stage):
    """Sets ``ctx.identity``; refuses a caller without a valid credential (401), one throttled
    for failing too often (429), or one asking for a model it may not use (403)."""

    kind = "authenticate"
    name = "authenticate"

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def on_request(self, ctx: RequestContext) -> None:
        """Raises:
            AuthenticationFailed, RateLimited, PermissionDenied: see
                ``Authenticator.identify``.
        """
        authenticator = self.authenticator
        identity = authenticator.cached(ctx.headers, ctx.client, ctx.request.model)
        if identity is None:  # not cached, or refused: the full check says which
            identity = await authenticator.identify(ctx.headers, ctx.client, ctx.request.model)
        ctx.identity = identity
        ctx.record.key = identity.label
