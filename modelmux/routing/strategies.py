"""Balance strategies: which deployments of a model to try, primary first, then fallbacks.

Pure functions and two small stateful pickers over a ``Deployment`` state view the caller
builds (health, in-flight count and TTFT EWMA come from elsewhere). Every pick returns only
healthy candidates; randomness is injected as ``rand() -> float in [0, 1)``. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

Rand = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Deployment:
    """What a strategy may know about one deployment at the moment of a pick."""

    name: str
    weight: int = 1
    priority: int = 0
    input_cost_per_1k: float = 0.0
    output_cost_per_1k: float = 0.0
    tags: frozenset[str] = field(default_factory=frozenset)
    in_flight: int = 0
    ewma_ttft: float | None = None
    healthy: bool = True

    def price(self, input_tokens: int, output_tokens: int) -> float:
        """The configured price of a request of that size."""
        return (input_tokens * self.input_cost_per_1k
                + output_tokens * self.output_cost_per_1k) / 1000.0


def healthy(deployments: Iterable[Deployment]) -> list[Deployment]:
    """The healthy deployments, in the given order."""
    return [d for d in deployments if d.healthy]


def ewma(previous: float | None, sample: float, alpha: float = 0.3) -> float:
    """The next exponentially weighted moving average; the first sample seeds it."""
    return sample if previous is None else alpha * sample + (1.0 - alpha) * previous


class RoundRobin:
    """Rotates through the healthy deployments: each pick starts one further along."""

    def __init__(self) -> None:
        self._next = 0

    def pick(self, deployments: Sequence[Deployment]) -> list[Deployment]:
        """The healthy deployments rotated to the next start; the rest follow as fallbacks."""
        candidates = healthy(deployments)
        if not candidates:
            return []
        start = self._next % len(candidates)
        self._next = start + 1
        return candidates[start:] + candidates[:start]


class SmoothWeighted:
    """nginx's smooth weighted round-robin: add each weight, pick the max, subtract the total.

    Weights 5, 1, 1 give a a b a c a a, repeating. Deployments of weight ≤ 0 are never primary
    but still serve as fallbacks; a deployment leaving the healthy set forgets its credit.
    """

    def __init__(self) -> None:
        self._current: dict[str, int] = {}

    def pick(self, deployments: Sequence[Deployment]) -> list[Deployment]:
        """The primary by the algorithm, then the rest by current credit, highest first."""
        candidates = healthy(deployments)
        weighted = [d for d in candidates if d.weight > 0]
        self._current = {d.name: self._current.get(d.name, 0) for d in weighted}
        if not weighted:
            return candidates
        total = 0
        best = weighted[0]
        for d in weighted:
            self._current[d.name] += d.weight
            total += d.weight
            if self._current[d.name] > self._current[best.name]:
                best = d
        self._current[best.name] -= total
        rest = sorted((d for d in candidates if d is not best),
                      key=lambda d: -self._current.get(d.name, -(1 << 62)))
        return [best, *rest]


def round_robin(deployments: Sequence[Deployment], counter: int) -> list[Deployment]:
    """Stateless round-robin: the healthy deployments rotated by ``counter``."""
    candidates = healthy(deployments)
    if not candidates:
        return []
    start = counter % len(candidates)
    return candidates[start:] + candidates[:start]


def weighted(deployments: Sequence[Deployment], state: SmoothWeighted) -> list[Deployment]:
    """Smooth weighted round-robin with its credit kept in ``state``."""
    return state.pick(deployments)


def least_connections(deployments: Sequence[Deployment]) -> list[Deployment]:
    """Fewest requests in flight first; ties keep the configured order."""
    return sorted(healthy(deployments), key=lambda d: d.in_flight)


def _ttft_key(d: Deployment) -> float:
    return -1.0 if d.ewma_ttft is None else d.ewma_ttft


def latency(deployments: Sequence[Deployment], rand: Rand) -> list[Deployment]:
    """Power of two choices: two distinct random candidates, the lower TTFT EWMA wins.

    A deployment with no TTFT yet counts as fastest, so new ones get probed. The loser is the
    first fallback; the rest follow by EWMA. Ties between the two go to the first drawn.
    """
    candidates = healthy(deployments)
    n = len(candidates)
    if n < 2:
        return candidates
    i = min(int(rand() * n), n - 1)
    j = min(int(rand() * (n - 1)), n - 2)
    if j >= i:
        j += 1
    a, b = candidates[i], candidates[j]
    first, second = (b, a) if _ttft_key(b) < _ttft_key(a) else (a, b)
    rest = sorted((d for k, d in enumerate(candidates) if k not in (i, j)), key=_ttft_key)
    return [first, second, *rest]


def cost(deployments: Sequence[Deployment], input_tokens: int,
         output_tokens: int) -> list[Deployment]:
    """Cheapest first by configured price for the estimated token counts; ties keep order."""
    return sorted(healthy(deployments), key=lambda d: d.price(input_tokens, output_tokens))


def availability(deployments: Sequence[Deployment]) -> list[Deployment]:
    """Healthy deployments by priority (lower number first); ties keep the configured order."""
    return sorted(healthy(deployments), key=lambda d: d.priority)


def model_specific(deployments: Sequence[Deployment],
                   required: Iterable[str]) -> list[Deployment]:
    """Healthy deployments carrying every required capability tag, by priority then order."""
    need = frozenset(required)
    return availability([d for d in deployments if need <= d.tags])


def hybrid(deployments: Sequence[Deployment], input_tokens: int,
           output_tokens: int) -> list[Deployment]:
    """Priority tier first; within a tier fewest in flight, then lowest TTFT EWMA (unknown
    counts as fastest), then cheapest; ties keep the configured order."""
    return sorted(healthy(deployments), key=lambda d: (d.priority, d.in_flight, _ttft_key(d),
                                                       d.price(input_tokens, output_tokens)))


STRATEGIES = ("round_robin", "weighted", "least_connections", "latency", "cost", "availability",
              "model_specific", "hybrid")


class Balancer:
    """One group's strategy by name, with the state the stateful ones keep between picks."""

    def __init__(self, strategy: str, rand: Rand) -> None:
        """Raises: ValueError: an unknown strategy name."""
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}")
        self.strategy = strategy
        self._rand = rand
        self._rr = RoundRobin()
        self._weighted = SmoothWeighted()

    def pick(self, deployments: Sequence[Deployment], required: Iterable[str] = (),
             input_tokens: int = 0, output_tokens: int = 0) -> list[Deployment]:
        """The healthy deployments in the order to try them."""
        s = self.strategy
        if s == "round_robin":
            return self._rr.pick(deployments)
        if s == "weighted":
            return self._weighted.pick(deployments)
        if s == "least_connections":
            return least_connections(deployments)
        if s == "latency":
            return latency(deployments, self._rand)
        if s == "cost":
            return cost(deployments, input_tokens, output_tokens)
        if s == "model_specific":
            return model_specific(deployments, required)
        if s == "hybrid":
            return hybrid(deployments, input_tokens, output_tokens)
        return availability(deployments)
