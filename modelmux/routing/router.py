"""Which deployments a request tries, in what order, and the live state behind that choice.

``Router`` keeps one ``Live`` record per deployment (circuit breaker, rate limits, requests
in flight, an EWMA and recent samples of time to first byte) and turns a request's group
into an ordered plan: the first matching rule, then the group's strategy over the healthy
deployments, then the open ones, then the ``fallback_group`` chain. ``admit`` asks a
deployment's limits and breaker when its turn comes. Pure: no I/O, clock and randomness
injected; the request path in ``pipeline.call`` does the waiting and the calls.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from modelmux import errors
from modelmux.config.routing import RuleConfig
from modelmux.config.settings import BreakerPolicy
from modelmux.errors import ModelMuxError, RateLimited, ServiceUnavailable
from modelmux.routing.breaker import BreakerState, CircuitBreaker
from modelmux.routing.facts import DEFAULT_OUTPUT_TOKENS
from modelmux.routing.memory import MemoryLimits
from modelmux.routing.models import DeploymentSpec, Group, ModelIndex
from modelmux.routing.store import Lease, LimitStore, has_limits
from modelmux.routing.strategies import Balancer, Deployment, ewma
from modelmux.rules.compiler import Rule, compile_rule
from modelmux.upstream.errors import UpstreamConnectError, UpstreamTLSError
from modelmux.upstream.retry import is_retryable_error, parse_retry_after

TTFT_SAMPLES = 256
MAX_LIVE = 1024
MAX_FALLBACK_GROUPS = 8


def is_failover_error(error: ModelMuxError) -> bool:
    """True for failures another deployment of the same model may not share.

    Rate limits (429), overload (529/503), upstream 5xx, resets, timeouts and connection
    errors; never the client's own mistakes (400, 404, 413, …) nor upstream auth failures.
    """
    if is_retryable_error(error):
        return True
    if isinstance(error, errors.UpstreamTimeout):
        return True
    if isinstance(error, UpstreamConnectError):
        return not isinstance(error, UpstreamTLSError) and error.code != "upstream_pool_closed"
    return False


def retry_after_of(error: ModelMuxError) -> float | None:
    """The ``retry-after`` a rate-limited or overloaded answer carried, in seconds, if any."""
    if not isinstance(error, (RateLimited, ServiceUnavailable)):
        return None
    for name, value in error.headers:
        if name.lower() == b"retry-after":
            return parse_retry_after(value)
    return None


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """A compiled ``[[routing.rules]]`` entry: send matching requests to a provider or group."""

    rule: Rule
    provider: str | None = None
    group: str | None = None


def compile_rules(configs: Iterable[RuleConfig]) -> list[RoutingRule]:
    """Compile ``[[routing.rules]]`` once, at config load.

    Raises:
        RuleError: a rule that does not parse or type-check (the config check reports these
            with their key path first).
    """
    return [RoutingRule(compile_rule(c.when), c.provider, c.group) for c in configs]


class Samples:
    """The last ``size`` samples, in arrival order and kept sorted, so a percentile is one
    index rather than a sort per request."""

    __slots__ = ("_recent", "_sorted")

    def __init__(self, size: int = TTFT_SAMPLES) -> None:
        self._recent: deque[float] = deque(maxlen=size)
        self._sorted: list[float] = []

    def append(self, value: float) -> None:
        if len(self._recent) == self._recent.maxlen:
            del self._sorted[bisect.bisect_left(self._sorted, self._recent[0])]
        self._recent.append(value)
        bisect.insort(self._sorted, value)

    def extend(self, values: Iterable[float]) -> None:
        for value in values:
            self.append(value)

    def __len__(self) -> int:
        return len(self._recent)

    def __iter__(self) -> Iterator[float]:
        return iter(self._recent)

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0-100, nearest rank); None without samples."""
        ordered = self._sorted
        if not ordered:
            return None
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass(slots=True)
class Live:
    """What the router knows about one deployment right now."""

    spec: DeploymentSpec
    breaker: CircuitBreaker
    in_flight: int = 0
    ewma_ttft: float | None = None
    ttfts: Samples = field(default_factory=Samples)

    def view(self, now: float, spec: DeploymentSpec | None = None) -> Deployment:
        """The strategy's view of ``spec`` (default: this record's own) in this state."""
        s = spec or self.spec
        return Deployment(s.id, s.weight, s.priority, s.input_cost_per_1k, s.output_cost_per_1k,
                          s.tags, self.in_flight, self.ewma_ttft,
                          self.breaker.state(now) is not BreakerState.OPEN)

    def ttft_percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0-100, nearest rank) of recent TTFT samples."""
        return self.ttfts.percentile(q)


@dataclass(slots=True)
class Attempt:
    """One granted try at one deployment; ``guarded`` when its breaker wants a verdict."""

    live: Live
    spec: DeploymentSpec
    guarded: bool
    tokens: float
    started: float
    lease: Lease | None = None  # granted by the limit store; settled when the attempt ends
    judged: bool = False  # the breaker has its verdict
    done: bool = False  # slot and reservation settled


@dataclass(frozen=True, slots=True)
class Estimate:
    """The request size strategies and limits work with."""

    prompt_tokens: int = 0
    max_tokens: int | None = None

    @property
    def output_tokens(self) -> int:
        return self.max_tokens if self.max_tokens is not None else DEFAULT_OUTPUT_TOKENS


class Router:
    """Live deployment state, the strategies, the rules and the plan of each request."""

    def __init__(self, *, policy: BreakerPolicy | None = None, strategy: str = "availability",
                 rules: Sequence[RoutingRule] = (), clock: Callable[[], float] = time.monotonic,
                 rand: Callable[[], float] = random.random,
                 limits: LimitStore | None = None,
                 on_open: Callable[[str, float], None] | None = None) -> None:
        """``limits`` holds the rate-limit state (default: this process's buckets); the
        router only settles leases and reads it for ``snapshot``, the dispatcher acquires.
        ``on_open(deployment id, seconds)`` hears each circuit this router opens."""
        self.policy = policy or BreakerPolicy()
        self.limits: LimitStore = limits if limits is not None else MemoryLimits(clock=clock)
        self.on_open = on_open
        self.strategy = strategy
        self.rules = list(rules)
        self.clock = clock
        self.rand = rand
        self.live: dict[str, Live] = {}
        self._balancers: dict[str, Balancer] = {}

    def state(self, spec: DeploymentSpec) -> Live:
        """The live record of ``spec`` (made on first use).

        Past ``MAX_LIVE`` records, a new ``provider/model`` (clients may name any model of a
        provider) shares its provider's ``provider/*`` record, so memory stays bounded.
        """
        live = self.live.get(spec.id)
        if live is None:
            if len(self.live) >= MAX_LIVE:
                shared = DeploymentSpec(spec.provider, "*")
                live = self.live.get(shared.id)
                if live is not None:
                    return live
                spec = shared
            live = self.live[spec.id] = Live(spec, CircuitBreaker(self.policy))
        return live

    def breaker(self, deployment_id: str) -> CircuitBreaker:
        """The breaker of a deployment seen before, by ``provider/model``.

        Raises:
            KeyError: no such deployment yet.
        """
        return self.live[deployment_id].breaker

    def hold_open(self, deployment_id: str, seconds: float) -> bool:
        """Another replica opened ``deployment_id``'s circuit for ``seconds``: skip it here too
        (a deployment this router has not seen is ignored). Returns whether that changed
        anything."""
        live = self.live.get(deployment_id)
        return live is not None and live.breaker.hold_open(self.clock(), seconds)

    def force(self, deployment_id: str, state: str) -> None:
        """An operator's ``open`` (held until closed) or ``closed`` (anything else) for a
        known deployment. Raises: KeyError: no such deployment."""
        breaker = self.live[deployment_id].breaker
        if state == "open":
            breaker.pin_open(self.clock())
        else:
            breaker.reset(self.clock())

    def add(self, specs: Iterable[DeploymentSpec]) -> None:
        """Make the live records of ``specs`` now (so they show before their first request)."""
        for spec in specs:
            self.state(spec)

    def adopt(self, old: Router, ids: Iterable[str]) -> list[str]:
        """Take over ``old``'s live records (breaker, in-flight count, TTFT samples) and
        limit buckets of the deployments ``ids``, after a reload left them unchanged.

        The records are shared, not copied: the old router's in-flight attempts settle into
        them, so limits and counts stay true across the drain. A changed breaker policy
        starts those breakers afresh. Returns the ids taken over.
        """
        taken = []
        for ident in ids:
            live, mine = old.live.get(ident), self.live.get(ident)
            if live is None or mine is None:
                continue
            live.spec = mine.spec
            if old.policy != self.policy:
                live.breaker = CircuitBreaker(self.policy)
            self.live[ident] = live
            taken.append(ident)
        self.limits.carry(old.limits, taken)
        return taken

    def _order(self, group: Group, estimate: Estimate) -> list[DeploymentSpec]:
        if len(group.deployments) == 1:  # nothing to choose between (most implicit groups)
            return list(group.deployments)
        name = group.strategy or self.strategy
        balancer = self._balancers.get(f"{name}:{group.name}")
        if balancer is None:
            balancer = self._balancers[f"{name}:{group.name}"] = Balancer(name, self.rand)
        now = self.clock()
        specs = {spec.id: spec for spec in group.deployments
                 if name != "model_specific" or group.tags <= spec.tags}
        views = [self.state(spec).view(now, spec) for spec in specs.values()]
        picked = [specs[d.name] for d in balancer.pick(
            views, group.tags, estimate.prompt_tokens, estimate.output_tokens)]
        return picked + [spec for spec in specs.values() if spec not in picked]

    def plan(self, index: ModelIndex, group: Group, facts: dict[str, object],
             estimate: Estimate) -> list[DeploymentSpec]:
        """Every deployment the request may try, best first, each once.

        The first rule that matches sends it to its ``group`` (in that group's plan) or to its
        ``provider`` (the group's deployments there, else the model as asked, on that provider,
        with no fallback elsewhere). Otherwise: the group's order, then its fallback groups'.
        """
        for routing_rule in self.rules:
            if not routing_rule.rule.matches(facts):
                continue
            if routing_rule.provider is not None:
                mine = [d for d in group.deployments if d.provider.name == routing_rule.provider]
                if mine:
                    return self._order(Group(group.name, tuple(mine), group.strategy,
                                             group.tags), estimate)
                provider = index.providers.get(routing_rule.provider)
                if provider is not None:
                    return [index.spec(provider, str(facts.get("model", group.name)))]
                continue
            chosen = index.group_named(routing_rule.group or "")
            if chosen is not None and chosen.deployments:
                group = chosen
            break
        out: list[DeploymentSpec] = []
        seen_groups: set[str] = set()
        current: Group | None = group
        while current is not None and current.name not in seen_groups \
                and len(seen_groups) < MAX_FALLBACK_GROUPS:
            seen_groups.add(current.name)
            out += [d for d in self._order(current, estimate) if d not in out]
            current = (index.group_named(current.fallback_group)
                       if current.fallback_group else None)
        return out

    def admit(self, spec: DeploymentSpec, tokens: float, *, guarded: bool = True
              ) -> Attempt | None:
        """Ask ``spec``'s breaker (unless not ``guarded``): the attempt, or None when its
        circuit refuses. Its rate limits are the limit store's to grant next (``release``
        the attempt if they refuse)."""
        live = self.state(spec)
        now = self.clock()
        if guarded and not live.breaker.allow(now):
            return None
        live.in_flight += 1
        return Attempt(live, spec, guarded, tokens, now)

    def succeeded(self, attempt: Attempt, *, complete: bool = False) -> None:
        """The attempt's first byte arrived (``complete``: the whole answer): feed its TTFT.
        A complete answer is a success for the breaker now; a stream's verdict waits for
        ``finish``, which knows whether it ended cleanly."""
        now = self.clock()
        sample = max(0.0, now - attempt.started)
        live = attempt.live
        live.ewma_ttft = ewma(live.ewma_ttft, sample)
        live.ttfts.append(sample)
        if complete:
            self._judge(attempt, "success")

    def failed(self, attempt: Attempt, error: ModelMuxError) -> None:
        """Report an attempt that ended in ``error`` and finish it: a failover error counts
        against the deployment (a ``retry-after`` opens its circuit for that long); any other
        error is no verdict."""
        if is_failover_error(error):
            self._judge(attempt, "failure", retry_after_of(error))
        else:
            self._judge(attempt, "release")
        self._free(attempt, 0)

    def released(self, attempt: Attempt) -> None:
        """An attempt ended with no verdict (client gone, cancelled hedge, internal error)."""
        self._judge(attempt, "release")
        self._free(attempt, 0)

    def finish(self, attempt: Attempt, tokens: float | None, *, broke: bool = False) -> None:
        """The served response is over, having used ``tokens`` (None: unknown, keep the
        estimate): the breaker's verdict if not given yet (a success, or a failure when it
        ``broke`` after its first byte), then its slot and reservation are settled.
        Idempotent."""
        if attempt.guarded and not attempt.judged:  # _judge's own test: a call less when judged
            self._judge(attempt, "failure" if broke else "success")
        if not attempt.done:
            self._free(attempt, tokens)

    def _judge(self, attempt: Attempt, outcome: str, retry_after: float | None = None) -> None:
        """One verdict per guarded attempt: the first reported wins."""
        if not attempt.guarded or attempt.judged:
            return
        attempt.judged = True
        breaker, now = attempt.live.breaker, self.clock()
        if outcome == "success":
            breaker.on_success(now)
        elif outcome == "failure":
            opened = breaker.times_opened
            breaker.on_failure(now, retry_after)
            if self.on_open is not None and breaker.times_opened != opened:
                self.on_open(attempt.live.spec.id, breaker.open_for(now))
        else:
            breaker.release(now)

    def _free(self, attempt: Attempt, tokens: float | None) -> None:
        if attempt.done:
            return
        attempt.done = True
        live = attempt.live
        live.in_flight = max(0, live.in_flight - 1)
        if attempt.lease is not None:
            self.limits.settle(attempt.lease, attempt.tokens if tokens is None else tokens)

    def snapshot(self) -> dict[str, dict[str, object]]:
        """Per deployment: breaker state, in flight, TTFT EWMA and limits, JSON-ready."""
        now = self.clock()
        out: dict[str, dict[str, object]] = {}
        for ident, live in self.live.items():
            rpm_left, tpm_left = (self.limits.available(live.spec) if has_limits(live.spec)
                                  else (None, None))
            out[ident] = {
                "provider": live.spec.provider.name, "model": live.spec.model,
                "breaker": live.breaker.snapshot(now), "in_flight": live.in_flight,
                "ewma_ttft_ms": None if live.ewma_ttft is None else round(live.ewma_ttft * 1e3, 3),
                "limits": {
                    "rpm": live.spec.rpm, "tpm": live.spec.tpm,
                    "max_concurrent": live.spec.max_concurrent,
                    "rpm_available": None if rpm_left is None else round(rpm_left, 3),
                    "tpm_available": None if tpm_left is None else round(tpm_left, 3),
                },
            }
        return out
