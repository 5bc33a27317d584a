"""The admit stage: the caller's rpm, tpm and max_parallel, at its key, user and team.

Each scope of ``ctx.identity`` that carries a limit is held in the App's limit store as a
spec of its own (``scope_spec``): the token buckets and the Redis scripts the call stage uses
for deployments, so with ``[state] backend = "redis"`` every instance shares them exactly.
A request must be granted at every scope; a refusal is a 429 ``rate_limit_exceeded`` with
``retry-after``. Every answer to a limited caller carries OpenAI's ``x-ratelimit-*`` headers
(for the scope with the least left). The grant is settled with the real token count when the
answer ends. Built only when auth is on: the App builds it with authentication as one stage
(``pipeline.authenticate.KeyGate``); ``build_admit_stage`` builds it alone.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from modelmux.config.schema import Config
from modelmux.errors import RateLimited
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.ratelimits import Meter, describe, duration, duration_ms
from modelmux.pipeline.stage import Pipeline, Stage
from modelmux.routing.facts import expected_tokens
from modelmux.routing.limits import DeploymentLimits
from modelmux.routing.memory import MemoryLimits
from modelmux.routing.models import DeploymentSpec
from modelmux.routing.store import Lease, LimitStore
from modelmux.tenancy.records import Identity, Limited

__all__ = ["AdmitStage", "Meter", "build_admit_stage", "carry_admission", "duration",
           "duration_ms", "request_tokens", "scope_spec"]

log = logging.getLogger("modelmux.pipeline")

NAME = "admit"
SCOPE_PREFIX = "/"
"""Every scope spec's id starts here: no configured provider has an empty name, so no
deployment id (``provider/model``) can be one."""


@dataclass(slots=True)
class _Scopes:
    """The ``ProviderRef`` of every scope spec: an empty name no provider can have."""

    name: str = ""
    models: list[str] = field(default_factory=list)


_SCOPES = _Scopes()


def scope_spec(scope: str, ident: str, limits: Limited) -> DeploymentSpec:
    """The limit-store spec of one scope (``key``, ``user``, ``team``) and its limits.

    The limits are part of its id, so changing them starts fresh buckets everywhere at once
    (an in-process store keeps a bucket's capacity for its life).
    """
    rpm, tpm, parallel = limits.rpm, limits.tpm, limits.max_parallel
    return DeploymentSpec(_SCOPES, f"{scope}:{ident}:{rpm or 0}:{tpm or 0}:{parallel or 0}",
                          rpm=rpm, tpm=tpm, max_concurrent=parallel)


class AdmitStage(Stage):
    """Grants each request at every limited scope of its identity, or answers 429."""

    kind = "admit"
    name = NAME

    def __init__(self, limits: LimitStore) -> None:
        self.limits = limits
        self._specs: dict[tuple[str, str], tuple[Limited, DeploymentSpec]] = {}
        self._plans: dict[int, tuple[Identity, list[Meter]]] = {}
        # the in-process store decides without I/O: its buckets are used directly, no lease
        self._here = limits if isinstance(limits, MemoryLimits) else None
        self._left = limits.left if isinstance(limits, MemoryLimits) else limits.available
        local = getattr(limits, "fallback", limits)
        self._share = local.share if isinstance(local, MemoryLimits) else 1

    def spec(self, scope: str, ident: str, limits: Limited) -> DeploymentSpec:
        """``scope_spec``, made once per record (records are cached by the authenticate stage)."""
        held = self._specs.get((scope, ident))
        if held is not None and held[0] is limits:
            return held[1]
        spec = scope_spec(scope, ident, limits)
        if held is not None and held[1].id == spec.id:
            spec = held[1]
        elif len(self._specs) >= 65_536:
            self._specs.clear()
        self._specs[scope, ident] = (limits, spec)
        return spec

    def meters(self, identity: Identity) -> list[Meter]:
        """The limited scopes of ``identity``, worked out once per identity object (the
        authenticate stage hands out the same one while it holds the credential; a changed
        record comes as a new object)."""
        held = self._plans.get(id(identity))
        if held is not None and held[0] is identity:
            return held[1]
        meters = [Meter(self.spec(scope, ident, limits), scope, ident)
                  for scope, ident, limits in identity.scopes()
                  if limits.rpm is not None or limits.tpm is not None
                  or limits.max_parallel is not None]
        if len(self._plans) >= 65_536:
            self._plans.clear()
        self._plans[id(identity)] = (identity, meters)  # holding it keeps its id unique
        return meters

    def adopt(self, old: AdmitStage) -> None:
        """After a reload: count on in ``old``'s in-process buckets of every scope, so a reload
        does not reset a key's limits (with Redis the shared counts live on there anyway)."""
        source = getattr(old.limits, "fallback", old.limits)
        if isinstance(source, MemoryLimits):
            self.limits.carry(old.limits,
                              [i for i in source.limits if i.startswith(SCOPE_PREFIX)])

    async def on_request(self, ctx: RequestContext) -> None:
        """Raises:
            RateLimited: some scope is over its rpm, tpm or max_parallel (429, with
                ``retry-after`` and the ``x-ratelimit-*`` headers).
        """
        identity = ctx.identity
        if identity is None:
            return
        held = self._plans.get(id(identity))
        meters = held[1] if held is not None and held[0] is identity else self.meters(identity)
        if not meters:
            return
        if self._here is None:
            await self.admit_there(ctx, meters)
        else:
            self.admit_here(ctx, meters)

    def admit_here(self, ctx: RequestContext, meters: list[Meter]) -> None:
        """``on_request`` with the in-process store (``meters`` not empty): decided on its
        buckets, without I/O, so without a coroutine.

        Raises:
            RateLimited: as ``on_request``.
        """
        here = self._here
        assert here is not None
        if len(meters) > 1:
            self._admit_here(here, ctx, meters)
            return
        meter = meters[0]  # one limited scope, the usual case: ``_admit_here`` written out,
        tpm = meter.tpm  # its ``describe`` done with the buckets at hand
        if tpm:
            cost: float = expected_tokens(ctx.request, ctx.body)  # ``request_tokens``
            if cost * self._share > tpm:
                # oversized: admitted by a full bucket, which its real count puts in debt
                cost = tpm / self._share
        else:
            cost = 0.0
        buckets = here.limits.get(meter.key) or here.of(meter.spec)
        wait = buckets.try_acquire(here.clock(), cost)
        if wait:
            describe(self._left, meters, ctx.response_headers)
            raise self.refusal(meter.scope, meter.ident, meter.spec, cost, wait)
        ctx.state[NAME] = ((cost, meter, buckets),)
        rpm, tpm_bucket = buckets.rpm, buckets.tpm
        left = (rpm.tokens if rpm is not None else None,
                tpm_bucket.tokens if tpm_bucket is not None else None)
        ctx.response_headers += meter.sent if left == meter.seen else meter.headers(left)

    async def admit_there(self, ctx: RequestContext, meters: list[Meter]) -> None:
        """``on_request`` with a store that may do I/O (Redis): a lease per scope.

        Raises:
            RateLimited: as ``on_request``.
        """
        granted: list[tuple[DeploymentSpec, Lease]] = []
        tokens = -1
        cost: float
        for n, meter in enumerate(meters):
            spec = meter.spec
            cost = 0.0
            if meter.tpm:
                if tokens < 0:
                    tokens = request_tokens(ctx)
                # oversized: admitted by a full bucket, which its real count puts in debt
                cost = tokens if tokens * self._share <= meter.tpm else meter.tpm / self._share
            got = await self.limits.acquire(spec, cost)
            if not isinstance(got, Lease):
                for _, lease in granted:
                    self.limits.settle(lease, 0.0)
                describe(self._left, meters[:n + 1], ctx.response_headers)
                raise self.refusal(meter.scope, meter.ident, spec, cost, got)
            granted.append((spec, got))
        ctx.state[NAME] = granted
        describe(self._left, meters, ctx.response_headers)

    def _admit_here(self, store: MemoryLimits, ctx: RequestContext, meters: list[Meter]
                    ) -> None:
        """``on_request`` with the in-process store: the same decisions on its buckets, read
        directly at one clock reading; what is held is ``(tokens, meter, buckets)`` per scope."""
        buckets_of = store.limits
        now = store.clock()
        tokens = -1
        granted: list[tuple[float, Meter, DeploymentLimits]] = []
        cost: float
        for meter in meters:
            cost = 0.0
            if meter.tpm:
                if tokens < 0:
                    tokens = request_tokens(ctx)
                # oversized: admitted by a full bucket, which its real count puts in debt
                cost = tokens if tokens * self._share <= meter.tpm else meter.tpm / self._share
            buckets = buckets_of.get(meter.key)
            if buckets is None:
                buckets = store.of(meter.spec)
            wait = buckets.try_acquire(now, cost)
            if wait != 0.0:
                for taken, held, _ in granted:
                    store.give_back(held.key, taken)
                describe(self._left, meters[:len(granted) + 1], ctx.response_headers)
                raise self.refusal(meter.scope, meter.ident, meter.spec, cost, wait)
            granted.append((cost, meter, buckets))
        ctx.state[NAME] = granted
        describe(self._left, meters, ctx.response_headers)

    def on_answer(self, ctx: RequestContext) -> None:
        """Settle the grants with the tokens the answer reported (its estimate when it
        reported none; nothing when no answer came)."""
        granted = ctx.state.pop(NAME, None)
        if granted is None:
            return
        stats = ctx.record.stats
        counted = stats.tokens if stats is not None else None
        here = self._here
        if here is not None:
            spent = (counted[0] + counted[1] if counted is not None
                     else 0.0 if ctx.error is not None else None)
            for reserved, meter, buckets in granted:
                # a scope without tpm reserved no tokens and has none to correct; the buckets
                # are the ones charged (a reload since may have carried them to a new store)
                if meter.parallel:  # a slot to free in any case
                    buckets.settle(here.clock(), reserved,
                                   reserved if spent is None or not meter.tpm else spent)
                elif spent is not None and spent != reserved and meter.tpm:
                    buckets.correct(reserved, spent)
            return
        for _, lease in granted:
            used = (sum(counted) if counted is not None
                    else 0.0 if ctx.error is not None else lease.tokens)
            self.limits.settle(lease, used)

    def refusal(self, scope: str, ident: str, spec: DeploymentSpec, cost: float,
                wait: float) -> RateLimited:
        """The 429 for ``spec`` refusing ``cost`` tokens with ``wait`` seconds to wait."""
        rpm_left, tpm_left = self.limits.available(spec)
        if spec.rpm and rpm_left is not None and rpm_left < 1:
            what = f"requests per minute (limit {spec.rpm})"
        elif spec.tpm and tpm_left is not None and tpm_left < cost:
            what = f"tokens per minute (limit {spec.tpm}, this request ~{cost:.0f})"
        else:
            what = f"parallel requests (limit {spec.max_concurrent})"
        seconds = 1 if math.isinf(wait) else max(1, math.ceil(wait))
        log.debug("%s %s refused: %s", scope, ident, what)
        return RateLimited(
            f"Rate limit reached for {scope} {ident} on {what}. Retry after {seconds} s.",
            code="rate_limit_exceeded", headers=[(b"retry-after", b"%d" % seconds)])


def request_tokens(ctx: RequestContext) -> int:
    """The tokens a request is expected to use: its prompt (body bytes / 4) and its output
    (``max_tokens``, else the router's default), as the call stage estimates them."""
    return expected_tokens(ctx.request, ctx.body)


def carry_admission(old: Pipeline, new: Pipeline) -> None:
    """After a reload: ``new``'s admit stage adopts ``old``'s counts (when both have one)."""
    before = next((s for s in old.stages if isinstance(s, AdmitStage)), None)
    after = next((s for s in new.stages if isinstance(s, AdmitStage)), None)
    if before is not None and after is not None:
        after.adopt(before)


def build_admit_stage(config: Config, limits: LimitStore) -> AdmitStage | None:
    """The admit stage when auth is on (any key may be given limits at run time), else None:
    with auth off nothing is built and requests pay nothing."""
    if config.auth.mode == "none":
        return None
    return AdmitStage(limits)
