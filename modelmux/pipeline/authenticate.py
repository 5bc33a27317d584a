"""The authenticate stage: who the caller is, and whether it may use the model it asked for.

Built only when ``[auth] mode = "keys"``; with auth off a request meets no stage of this kind.
The App builds ``KeyGate``: authentication and the admit stage's limit check in one stage, so a
cached key's request is let in by one coroutine; ``AuthenticateStage`` is authentication alone.
"""

from __future__ import annotations

from modelmux.pipeline.admit import AdmitStage, Meter
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Stage
from modelmux.routing.store import LimitStore
from modelmux.tenancy.authn import Authenticator, KeyEntry


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


class KeyGate(AdmitStage):
    """``AuthenticateStage`` and then ``AdmitStage`` as one stage, placed where authentication
    goes (the admit stage comes right after it anyway): the same decisions and errors. A key
    found by ``Authenticator.fast`` keeps its limited scopes on its cache entry, and with the
    in-process store its grant is decided without a coroutine of its own."""

    kind = "authenticate"
    name = "authenticate"
    authenticator: Authenticator

    def __init__(self, authenticator: Authenticator, limits: LimitStore) -> None:
        self.authenticator = authenticator
        super().__init__(limits)

    def enter(self, ctx: RequestContext) -> bool:
        """The whole stage for a key ``Authenticator.fast`` finds, with no limit or with the
        in-process store; False (nothing done) otherwise. With the in-process store the
        gate's own ``enter`` (``Gate.enter``, the same work) takes this method's place.

        Raises:
            RateLimited: as ``AdmitStage.on_request``.
        """
        entry = self.authenticator.fast(ctx.headers, ctx.request.model)
        if entry is None:
            return False
        meters = entry.plan  # ``plan``, inline
        if meters is None:
            meters = entry.plan = self.meters(entry.identity)
        if meters and self._here is None:  # the store does I/O: ``on_request`` awaits it
            return False
        identity = entry.identity
        ctx.identity = identity
        ctx.record.key = identity.label
        if meters:
            self.admit_here(ctx, meters)
        return True

    async def on_request(self, ctx: RequestContext) -> None:
        """Raises:
            AuthenticationFailed, RateLimited, PermissionDenied: see
                ``Authenticator.identify``.
            RateLimited: some scope is over its limits (see ``AdmitStage.on_request``).
        """
        entry = self.authenticator.fast(ctx.headers, ctx.request.model)
        if entry is None:
            identity = await self.authenticator.identify(ctx.headers, ctx.client,
                                                         ctx.request.model)
            meters = self.meters(identity)
        else:
            identity = entry.identity
            meters = self.plan(entry)
        ctx.identity = identity
        ctx.record.key = identity.label
        if meters:
            if self._here is not None:
                self.admit_here(ctx, meters)
            else:
                await self.admit_there(ctx, meters)

    def plan(self, entry: KeyEntry) -> list[Meter]:
        """``meters`` of a cached entry's identity, kept on the entry."""
        meters = entry.plan
        if meters is None:
            meters = entry.plan = self.meters(entry.identity)
        return meters  # type: ignore[no-any-return]
