"""The admit stage: the caller's rpm, tpm and max_parallel, at its key, user and team.

Each scope of ``ctx.identity`` that carries a limit is held in the App's limit store as a
spec of its own (``scope_spec``): the token buckets and the Redis scripts the call stage uses
for deployments, so with ``[state] backend = "redis"`` every instance shares them exactly.
A request must be granted at every scope; a refusal is a 429 ``rate_limit_exceeded`` with
``retry-after``. Every answer to a limited caller carries OpenAI's ``x-ratelimit-*`` headers
(for the scope with the least left). The grant is settled with the real token count when the
answer ends. Built only when auth is on: the App builds it with authentication as one stage
(``pipeline.authenticate.KeyGate``); ``build_admit_stage`` builds it alone. With the
in-process store the per-request work is a ``Gate`` (``_gate_py`` or its native twin).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

from modelmux import _accel
from modelmux.config.schema import Config
from modelmux.errors import RateLimited
from modelmux.pipeline._gate_py import NAME
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.ratelimits import Meter, describe, duration, duration_ms
from modelmux.pipeline.stage import Pipeline, Stage
from modelmux.routing.facts import expected_tokens
from modelmux.routing.limits import DeploymentLimits
from modelmux.routing.memory import MemoryLimits
from modelmux.routing.models import DeploymentSpec
from modelmux.routing.store import Lease, LimitStore
from modelmux.tenancy.records import Identity, Limited

if TYPE_CHECKING:
    from modelmux.pipeline._gate_py import Gate
    from modelmux.tenancy.authn import Authenticator
else:  # the native twin when built (``_accel``), else the pure one
    Gate = _accel.load("gate", "modelmux.pipeline._gate_py").Gate

__all__ = ["AdmitStage", "Meter", "build_admit_stage", "carry_admission", "duration",
           "duration_ms", "request_tokens", "scope_spec"]

log = logging.getLogger("modelmux.pipeline")

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

    authenticator: Authenticator | None = None
    """Set by ``KeyGate``: the gate then lets a cached key in through ``Gate.enter``."""

    def __init__(self, limits: LimitStore) -> None:
        self.limits = limits
        self._specs: dict[tuple[str, str], tuple[Limited, DeploymentSpec]] = {}
        self._plans: dict[int, tuple[Identity, list[Meter]]] = {}
        self._left = limits.left if isinstance(limits, MemoryLimits) else limits.available
        local = getattr(limits, "fallback", limits)
        self._share = local.share if isinstance(local, MemoryLimits) else 1
        self._here: MemoryLimits | None = None
        self._gate: Gate | None = None
        self.hold(limits if isinstance(limits, MemoryLimits) else None)

    def hold(self, here: MemoryLimits | None) -> None:
        """Decide on ``here``'s buckets directly (the in-process store: no I/O, so no lease
        and no coroutine), through a ``Gate`` whose ``on_answer`` (and, for a ``KeyGate``,
        ``enter``) take the place of this stage's; None: through the store's coroutines.
        A ``Pipeline`` takes the hooks when it is built, so this comes before."""
        self._here = here
        for hook in ("enter", "on_answer"):
            self.__dict__.pop(hook, None)
        if here is None:
            self._gate = None
            return
        fast = self.authenticator.fast if self.authenticator is not None else None
        gate = self._gate = Gate(self, here, fast)
        self.on_answer = gate.on_answer  # type: ignore[method-assign]
        if fast is not None:
            self.enter = gate.enter  # type: ignore[method-assign]

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
        buckets, without I/O, so without a coroutine (``Gate.admit``).

        Raises:
            RateLimited: as ``on_request``.
        """
        assert self._gate is not None
        self._gate.admit(ctx, meters)

    def refuse(self, ctx: RequestContext, meters: list[Meter], meter: Meter, cost: float,
               wait: float) -> NoReturn:
        """Refuse a request that ``meter``'s scope (the last of ``meters`` asked) cannot
        grant: the ``x-ratelimit-*`` headers of ``meters`` added, then the 429.

        Raises:
            RateLimited: always.
        """
        describe(self._left, meters, ctx.response_headers)
        raise self.refusal(meter.scope, meter.ident, meter.spec, cost, wait)

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

    def admit_many(self, store: MemoryLimits, ctx: RequestContext, meters: list[Meter]
                   ) -> None:
        """``admit_here`` for several limited scopes: the same decisions on their buckets,
        read at one clock reading; what is held is ``(tokens, meter, buckets)`` per scope."""
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
        if self._gate is not None:  # grants on the in-process buckets
            self._gate.on_answer(ctx)
            return
        granted = ctx.state.pop(NAME, None)
        if granted is None:
            return
        stats = ctx.record.stats
        counted = stats.tokens if stats is not None else None
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
