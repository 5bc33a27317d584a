"""Strategies, rules, fallback policy and breaker policy in the request path, end to end.

Real gateway in-process, fake OpenAI upstreams with scripted faults (``tests.routing.scripted``),
the official SDK as the client. Backoff sleeps are recorded instead of slept.
"""

from __future__ import annotations

from collections import Counter

import openai
import pytest

from modelmux.routing.breaker import BreakerState
from tests.fakes.answers import TEXT
from tests.routing.scripted import Clock, ask, error_of, record_sleeps, served_by, upstreams
from tests.upstream import run, until

GROUP = """
[[routing.group]]
name = "g"
{extra}
deployments = [
  {{ provider = "p0", model = "m", weight = 3, priority = 1, input_cost_per_1k = 2.0 }},
  {{ provider = "p1", model = "m", weight = 1, priority = 0, input_cost_per_1k = 1.0 }},
]
"""


def group(strategy: str, extra: str = "") -> str:
    return GROUP.format(extra=f'strategy = "{strategy}"\n{extra}')


@pytest.mark.parametrize(("strategy", "expected"), [
    ("weighted", ["p0", "p0", "p1", "p0"] * 2),
    ("round_robin", ["p0", "p1"] * 4),
    ("availability", ["p1"] * 8),
    ("cost", ["p1"] * 8),
])
def test_group_strategy_decides_who_serves(strategy: str, expected: list[str]) -> None:
    async def main() -> None:
        async with upstreams(2, group(strategy)) as (fakes, gw):
            got = [(await served_by(gw, model="g"))[0] for _ in expected]
            assert got == expected
            assert [len(f.requests) for f in fakes] == [expected.count("p0"),
                                                        expected.count("p1")]

    run("asyncio", main())


def test_the_global_strategy_applies_to_implicit_groups() -> None:
    async def main() -> None:
        async with upstreams(3, '[routing]\nstrategy = "round_robin"\n') as (_, gw):
            got = Counter([(await served_by(gw))[0] for _ in range(6)])
            assert got == {"p0": 2, "p1": 2, "p2": 2}

    run("asyncio", main())


def test_latency_strategy_learns_ttft_from_real_requests() -> None:
    async def main() -> None:
        async with upstreams(2, group("latency")) as (_, gw):
            for stream in (False, True):
                await ask(gw, stream, model="g")
            lives = [gw.app.router.live[f"p{i}/m"] for i in range(2)]
            assert sum(len(live.ttfts) for live in lives) == 2
            assert all(s >= 0 for live in lives for s in live.ttfts)
            assert any(live.ewma_ttft is not None for live in lives)

    run("asyncio", main())


RULES = """
[routing]
strategy = "round_robin"

[[routing.group]]
name = "big"
deployments = [{ provider = "p2", model = "large" }]

[[routing.rules]]
when = 'header("x-region") == "west"'
provider = "p1"

[[routing.rules]]
when = 'metadata("tier") == "gold" or has_tools'
group = "big"

[[routing.rules]]
when = "max_tokens >= 1000 and not stream"
provider = "p2"
"""

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


def test_rules_send_requests_to_a_provider_or_a_group() -> None:
    async def main() -> None:
        async with upstreams(3, RULES) as (fakes, gw):
            west = {"extra_headers": {"X-Region": "west"}}
            assert [(await served_by(gw, **west))[0] for _ in range(3)] == ["p1"] * 3
            assert (await served_by(gw, metadata={"tier": "gold"}))[0] == "p2"
            assert fakes[2].requests[-1].json()["model"] == "large"  # the group's deployment
            assert (await served_by(gw, True, tools=TOOLS))[0] == "p2"
            assert (await served_by(gw, max_tokens=2000))[0] == "p2"
            assert fakes[2].requests[-1].json()["model"] == "m"  # p2 lists m: its deployment
            assert (await served_by(gw, True, max_tokens=2000))[0] in ("p0", "p1", "p2")

    run("asyncio", main())


FALLBACK = """
[[routing.group]]
name = "g"
fallback_group = "h"
deployments = [{{ provider = "p0", model = "m" }}, {{ provider = "p1", model = "m" }}]

[[routing.group]]
name = "h"
deployments = [{{ provider = "p2", model = "m" }}]

[routing.fallback]
{fallback}
"""


@pytest.mark.parametrize("stream", [False, True])
def test_fallback_runs_through_the_group_then_its_fallback_group(stream: bool) -> None:
    async def main() -> None:
        async with upstreams(3, FALLBACK.format(fallback="")) as (fakes, gw):
            fakes[0].faults.append("500")
            fakes[1].faults.append("429")
            text, headers = await ask(gw, stream, model="g")
            assert text == TEXT.text
            assert (headers["x-modelmux-provider"], headers["x-modelmux-attempts"]) == ("p2", "3")
            assert [len(f.requests) for f in fakes] == [1, 1, 1]

    run("asyncio", main())


def test_max_retries_bounds_the_attempts_and_disabled_means_one() -> None:
    async def main() -> None:
        for fallback, attempts in (("max_retries = 1", 2), ("enabled = false", 1)):
            async with upstreams(3, FALLBACK.format(fallback=fallback)) as (fakes, gw):
                for fake in fakes:
                    fake.faults.append("503")
                exc = await error_of(gw, model="g")
                assert exc.status_code == 502
                assert exc.response.headers["x-modelmux-attempts"] == str(attempts)
                assert sum(len(f.requests) for f in fakes) == attempts

    run("asyncio", main())


@pytest.mark.parametrize(("fallback", "delays"), [
    ('backoff = "exponential"\nbase_ms = 100\nmax_ms = 300', [0.1, 0.2, 0.3]),
    ('backoff = "constant"\nbase_ms = 100\nmax_ms = 300', [0.1, 0.1, 0.1]),
])
def test_backoff_between_attempts_with_jitter(fallback: str, delays: list[float]) -> None:
    async def main() -> None:
        routing = fallback + "\n[routing]\nstrategy = \"availability\"\n"
        async with upstreams(4, "[routing.fallback]\n" + routing) as (fakes, gw):
            slept = record_sleeps(gw)
            gw.app.dispatcher.rand = lambda: 1.0  # the top of the jitter range
            for fake in fakes[:3]:
                fake.faults.append("500")
            assert await served_by(gw) == ("p3", "4")
            assert slept == pytest.approx(delays)
            gw.app.dispatcher.rand = lambda: 0.0  # the bottom
            slept.clear()
            for fake in fakes[:3]:
                fake.faults.append("500")
            assert await served_by(gw) == ("p3", "4")
            low = [] if "exponential" in fallback else [0.05] * 3  # full jitter can reach 0
            assert slept == pytest.approx(low)

    run("asyncio", main())


SAME_PROVIDER = """
[[routing.group]]
name = "g"
deployments = [{ provider = "p0", model = "m" }, { provider = "p0", model = "m2" }]

[routing.fallback]
max_ms = 5000
"""


@pytest.mark.parametrize(("retry_after", "slept"), [("2", [2.0]), ("9", [])])
def test_retry_after_is_honoured_before_asking_the_same_provider_again(
        retry_after: str, slept: list[float]) -> None:
    async def main() -> None:
        async with upstreams(1, SAME_PROVIDER, retry_after=retry_after) as (fakes, gw):
            seen = record_sleeps(gw)
            fakes[0].faults.append("429")
            assert await served_by(gw, model="g") == ("p0", "2")
            assert [r.json()["model"] for r in fakes[0].requests] == ["m", "m2"]
            assert seen == slept  # over max_ms: not waited for, the other model is tried now

    run("asyncio", main())


BREAKER = """
[routing.breaker]
consecutive_failures = 100
error_rate = 0.5
min_requests = 4
window = 60
cooldown = 10
"""


def test_a_flapping_deployment_opens_on_its_error_rate() -> None:
    async def main() -> None:
        async with upstreams(2, BREAKER) as (fakes, gw):
            clock = Clock()
            gw.app.router.clock = clock
            fakes[0].faults.extend(["ok", "500", "ok", "500"])
            got = [await served_by(gw) for _ in range(4)]
            assert got == [("p0", "1"), ("p1", "2"), ("p0", "1"), ("p1", "2")]
            breaker = gw.app.router.breaker("p0/m")
            assert breaker.state(clock.now) is BreakerState.OPEN  # 2 of 4 failed
            assert await served_by(gw) == ("p1", "1")
            clock.now += 10
            assert await served_by(gw) == ("p0", "1")  # the half-open probe succeeds
            assert breaker.state(clock.now) is BreakerState.CLOSED

    run("asyncio", main())


def test_fail_n_times_opens_then_reopening_doubles_the_cooldown() -> None:
    async def main() -> None:
        policy = "[routing.breaker]\nconsecutive_failures = 2\ncooldown = 5\n"
        async with upstreams(2, policy) as (fakes, gw):
            clock = Clock()
            gw.app.router.clock = clock
            fakes[0].faults.extend(["500", "500", "500"])
            assert [await served_by(gw) for _ in range(2)] == [("p1", "2")] * 2
            breaker = gw.app.router.breaker("p0/m")
            assert breaker.state(clock.now) is BreakerState.OPEN
            clock.now += 5
            assert await served_by(gw) == ("p1", "2")  # the probe fails: open for 10 s
            assert breaker.snapshot(clock.now)["cooldown"] == 10.0
            clock.now += 9
            assert await served_by(gw) == ("p1", "1")
            clock.now += 1
            assert await served_by(gw) == ("p0", "1")

    run("asyncio", main())


def test_a_stream_that_breaks_after_its_first_byte_counts_against_its_breaker() -> None:
    async def main() -> None:
        policy = "[routing.breaker]\nconsecutive_failures = 2\ncooldown = 30\n"
        async with upstreams(2, policy) as (fakes, gw):
            clock = Clock()
            gw.app.router.clock = clock
            fakes[0].faults.extend(["reset", "reset"])  # four events, then a TCP reset
            for count in (1, 2):  # the client sees the error event the stream ends with
                with pytest.raises(openai.APIError, match="reset by upstream mid-response"):
                    await ask(gw, stream=True)
                assert len(fakes[0].requests) == count
            breaker = gw.app.router.breaker("p0/m")
            await until(lambda: breaker.state(clock.now) is BreakerState.OPEN)  # at the end
            assert await served_by(gw, True) == ("p1", "1")

    run("asyncio", main())
