"""The admit stage: the caller's rpm, tpm and max_parallel, at its key, user and team.

Each scope of ``ctx.identity`` that carries a limit is held in the App's limit store as a
spec of its own (``scope_spec``): the token buckets and the Redis scripts the call stage uses
for deployments, so with ``[state] backend = "redis"`` every instance shares them exactly.
A request must be granted at every scope; a refusal is a 429 ``rate_limit_exceeded`` with
``retry-after``. Every answer to a limited caller carries OpenAI's ``x-ratelimit-*`` headers
(for the scope with the least left). The grant is settled with the real token count when the
answer ends. Built only when auth is on (``build_admit_stage``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from modelmux.config.schema import Config
from modelmux.errors import Headers, RateLimited
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Pipeline, Stage
from modelmux.routing.facts import DEFAULT_OUTPUT_TOKENS, estimate_prompt_tokens, max_tokens_of
from modelmux.routing.memory import MemoryLimits
from modelmux.routing.models import DeploymentSpec
from modelmux.routing.store import Lease, LimitStore
from modelmux.tenancy.records import Limited

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


def duration(seconds: float) -> bytes:
    """A wait as OpenAI's ``x-ratelimit-reset-*`` headers write it: ``20ms`` below a second,
    else whole seconds rounded up, ``45s`` or ``6m0s``."""
    ms = math.ceil(seconds * 1000)
    if ms < 1000:
        return b"%dms" % max(0, ms)
    whole = (ms + 999) // 1000
    return b"%ds" % whole if whole < 60 else b"%dm%ds" % divmod(whole, 60)


_REQUESTS = (b"x-ratelimit-limit-requests", b"x-ratelimit-remaining-requests",
             b"x-ratelimit-reset-requests")
_TOKENS = (b"x-ratelimit-limit-tokens", b"x-ratelimit-remaining-tokens",
           b"x-ratelimit-reset-tokens")


def _described(headers: Headers, names: tuple[bytes, bytes, bytes], left: float,
               limit: int) -> None:
    if left < 0.0:
        left = 0.0
    elif left > limit:
        left = limit
    headers += ((names[0], b"%d" % limit), (names[1], b"%d" % left),
                (names[2], duration((limit - left) * 60 / limit)))


def ratelimit_headers(store: LimitStore, specs: list[DeploymentSpec]) -> Headers:
    """OpenAI's ``x-ratelimit-*`` headers for the scope with the fewest requests (and, apart,
    the fewest tokens) left; none for a kind of limit no scope has."""
    requests = tokens = None
    rpm_least = tpm_least = math.inf
    for spec in specs:
        if spec.rpm or spec.tpm:
            rpm_left, tpm_left = store.available(spec)
            if spec.rpm and rpm_left is not None and rpm_left < rpm_least:
                requests, rpm_least = spec.rpm, rpm_left
            if spec.tpm and tpm_left is not None and tpm_left < tpm_least:
                tokens, tpm_least = spec.tpm, tpm_left
    headers: Headers = []
    if requests is not None:
        _described(headers, _REQUESTS, rpm_least, requests)
    if tokens is not None:
        _described(headers, _TOKENS, tpm_least, tokens)
    return headers


class AdmitStage(Stage):
    """Grants each request at every limited scope of its identity, or answers 429."""

    kind = "admit"
    name = NAME

    def __init__(self, limits: LimitStore) -> None:
        self.limits = limits
        self._specs: dict[tuple[str, str], tuple[Limited, DeploymentSpec]] = {}
        # the in-process store decides without I/O: skip the coroutine
        self._now = limits.try_acquire if isinstance(limits, MemoryLimits) else None
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
        granted: list[tuple[DeploymentSpec, Lease]] | None = None
        tokens = -1
        cost: float
        for scope, ident, limits in identity.scopes():
            if limits.rpm is None and limits.tpm is None and limits.max_parallel is None:
                continue
            spec = self.spec(scope, ident, limits)
            cost = 0.0
            if spec.tpm:
                if tokens < 0:
                    tokens = request_tokens(ctx)
                # oversized: admitted by a full bucket, which its real count puts in debt
                cost = tokens if tokens * self._share <= spec.tpm else spec.tpm / self._share
            got = self._now(spec, cost) if self._now is not None \
                else await self.limits.acquire(spec, cost)
            if not isinstance(got, Lease):
                specs = [s for s, _ in granted or ()]
                for _, lease in granted or ():
                    self.limits.settle(lease, 0.0)
                ctx.response_headers += ratelimit_headers(self.limits, [*specs, spec])
                raise self.refusal(scope, ident, spec, cost, got)
            if granted is None:
                granted = []
            granted.append((spec, got))
        if granted is not None:
            ctx.state[NAME] = granted
            ctx.response_headers += ratelimit_headers(self.limits, [s for s, _ in granted])

    def on_answer(self, ctx: RequestContext) -> None:
        """Settle the grants with the tokens the answer reported (its estimate when it
        reported none; nothing when no answer came)."""
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
    output = max_tokens_of(ctx.request)
    return estimate_prompt_tokens(ctx.body) + (DEFAULT_OUTPUT_TOKENS if output is None
                                               else output)


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
