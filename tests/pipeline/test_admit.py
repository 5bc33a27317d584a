"""The admit stage with identities built here: rpm, tpm and max_parallel at key, user and team;
429 with retry-after and OpenAI's ``x-ratelimit-*`` headers; settling with the real usage.
The in-process store runs on an injected clock, so no test depends on time passing."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from modelmux.config.schema import decode
from modelmux.errors import RateLimited
from modelmux.observability.record import RequestRecord
from modelmux.pipeline.admit import (
    AdmitStage,
    build_admit_stage,
    carry_admission,
    duration,
    duration_ms,
    request_tokens,
    scope_spec,
)
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Pipeline
from modelmux.providers.base import CallStats
from modelmux.routing.memory import MemoryLimits
from modelmux.schemas.openai_chat import request_decoder
from modelmux.tenancy.records import Identity, Key, Team, User

pytestmark = pytest.mark.usefixtures("gate_twin")

BODY = b'{"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}'


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def key(**limits: Any) -> Key:
    return Key(id="k1", prefix="sk-mm-abc", hash="0" * 64, team_id=limits.pop("team_id", None),
               **limits)


def who(k: Key | None = None, user: User | None = None, team: Team | None = None) -> Identity:
    return Identity(kind="key", label="sk-mm-abc", role="user", key=k, user=user, team=team)


def context(identity: Identity | None, body: bytes = BODY) -> RequestContext:
    ctx = RequestContext("openai.chat", request_decoder.decode(body), body, [], "r1",
                         RequestRecord("r1", "/v1/chat/completions"))
    ctx.identity = identity
    return ctx


def stage(clock: Clock | None = None, share: int = 1) -> AdmitStage:
    return AdmitStage(MemoryLimits(share=share, clock=clock or Clock()))


def admit(s: AdmitStage, ctx: RequestContext) -> RequestContext:
    asyncio.run(s.on_request(ctx))
    return ctx


def refused(s: AdmitStage, ctx: RequestContext) -> RateLimited:
    with pytest.raises(RateLimited) as caught:
        asyncio.run(s.on_request(ctx))
    error = caught.value
    assert (error.status, error.code, error.type) == (429, "rate_limit_exceeded",
                                                      "rate_limit_error")
    return error


def answer(s: AdmitStage, ctx: RequestContext, tokens: tuple[int, int] | None) -> None:
    ctx.record.stats = CallStats()
    ctx.record.stats.tokens = tokens
    ctx.status = 200
    s.on_answer(ctx)


def test_rpm_refuses_the_third_request_with_headers() -> None:
    clock = Clock()
    s, ident = stage(clock), who(key(rpm=2))
    first = admit(s, context(ident))
    assert dict(first.response_headers) == {
        b"x-ratelimit-limit-requests": b"2", b"x-ratelimit-remaining-requests": b"1",
        b"x-ratelimit-reset-requests": b"30s"}
    second = admit(s, context(ident))
    assert dict(second.response_headers)[b"x-ratelimit-remaining-requests"] == b"0"
    third = context(ident)
    error = refused(s, third)
    assert error.headers == [(b"retry-after", b"30")]
    assert "key k1 on requests per minute (limit 2)" in error.message
    assert dict(third.response_headers)[b"x-ratelimit-remaining-requests"] == b"0"
    assert third.state == {}  # nothing held: nothing to settle
    clock.now += 30  # one request back
    admit(s, context(ident))
    refused(s, context(ident))


def test_every_scope_must_pass_and_a_refusal_gives_back_what_was_taken() -> None:
    s = stage()
    team = Team(id="t1", name="research", rpm=1, tpm=10_000)
    ident = who(key(rpm=10, tpm=10_000, team_id="t1"), team=team)
    ctx = admit(s, context(ident))
    assert [lease.key for _, lease, _ in ctx.state["admit"]] == [
        "/key:k1:10:10000:0", "/team:t1:1:10000:0"]
    headers = dict(ctx.response_headers)  # the scope with the least left speaks
    assert headers[b"x-ratelimit-limit-requests"] == b"1"
    assert headers[b"x-ratelimit-remaining-requests"] == b"0"
    assert headers[b"x-ratelimit-limit-tokens"] == b"10000"
    error = refused(s, context(ident))
    assert "team t1 on requests per minute (limit 1)" in error.message
    key_spec = scope_spec("key", "k1", ident.key)  # type: ignore[arg-type]
    rpm_left, tpm_left = s.limits.available(key_spec)
    assert rpm_left == 8  # the refused request still counts at the key
    assert tpm_left == 10_000 - request_tokens(ctx)  # but its tokens came back


def test_tpm_settles_with_the_real_usage() -> None:
    s = stage()
    ident = who(user=User(id="u1", name="ann", tpm=1000))
    ctx = admit(s, context(ident))
    spec = scope_spec("user", "u1", ident.user)  # type: ignore[arg-type]
    reserved = request_tokens(ctx)
    assert reserved == len(BODY) // 4 + 100
    assert s.limits.available(spec)[1] == 1000 - reserved
    answer(s, ctx, (20, 30))
    assert s.limits.available(spec)[1] == 950
    assert ctx.state == {}
    answer(s, ctx, (20, 30))  # settled once only
    assert s.limits.available(spec)[1] == 950


def test_no_usage_keeps_the_estimate_and_an_error_returns_it() -> None:
    s = stage()
    ident = who(key(tpm=1000))
    spec = scope_spec("key", "k1", ident.key)  # type: ignore[arg-type]
    ok = admit(s, context(ident))
    answer(s, ok, None)
    assert s.limits.available(spec)[1] == 1000 - request_tokens(ok)
    failed = admit(s, context(ident))
    failed.error, failed.status = RuntimeError("upstream broke"), 502
    s.on_answer(failed)
    assert s.limits.available(spec)[1] == 1000 - request_tokens(ok)


def test_tpm_over_and_an_oversized_request() -> None:
    s = stage()
    ident = who(key(tpm=200))
    big = b'{"model": "m", "max_tokens": 5000, "messages": [{"role": "user", "content": "x"}]}'
    ctx = admit(s, context(ident, big))  # bigger than the bucket: admitted when it is full
    error = refused(s, context(ident))
    assert "tokens per minute (limit 200" in error.message
    answer(s, ctx, (10, 4000))  # its real count puts the bucket in debt
    error = refused(s, context(ident))
    assert int(dict(error.headers)[b"retry-after"]) > 60


def test_max_parallel_frees_its_slot_when_the_answer_ends() -> None:
    s = stage()
    ident = who(key(max_parallel=1))
    first = admit(s, context(ident))
    assert first.response_headers == []  # no rpm or tpm: no x-ratelimit headers
    error = refused(s, context(ident))
    assert "parallel requests (limit 1)" in error.message
    assert error.headers == [(b"retry-after", b"1")]
    answer(s, first, (1, 1))
    admit(s, context(ident))


def test_no_identity_or_no_limits_costs_nothing() -> None:
    s = stage()
    for ident in (None, who(key()), who(key(), User(id="u", name="u"), Team(id="t", name="t"))):
        ctx = admit(s, context(ident))
        assert ctx.response_headers == [] and ctx.state == {}
        s.on_answer(ctx)
    assert s.limits.limits == {}


def test_changed_limits_start_fresh_buckets() -> None:
    s = stage()
    admit(s, context(who(key(rpm=1))))
    refused(s, context(who(key(rpm=1))))
    admit(s, context(who(key(rpm=2))))  # raised by the admin: a bucket of its own
    same = key(rpm=2)
    assert s.spec("key", "k1", same) is s.spec("key", "k1", key(rpm=2))


def test_workers_share_a_tpm_limit_and_oversized_still_fit() -> None:
    s = stage(share=2)
    big = b'{"model": "m", "max_tokens": 900, "messages": [{"role": "user", "content": "x"}]}'
    admit(s, context(who(key(tpm=1000)), big))


def test_headers_go_out_through_the_pipeline_and_a_refusal_is_observed() -> None:
    s = stage()
    pipeline = Pipeline([s])
    assert pipeline.observes
    sent: list[tuple[bytes, bytes]] = []
    ctx = context(who(key(rpm=1)))
    ctx.response_headers = sent
    asyncio.run(pipeline.before_call(ctx))
    assert (b"x-ratelimit-limit-requests", b"1") in sent
    pipeline.after_answer(ctx)


@pytest.mark.parametrize("seconds, text", [(0, b"0ms"), (0.0201, b"21ms"), (1, b"1s"),
                                           (1.5, b"2s"), (59.9999, b"1m0s"), (360, b"6m0s"),
                                           (61.25, b"1m2s"), (59.0, b"59s")])
def test_duration(seconds: float, text: bytes) -> None:
    assert duration(seconds) == text


def test_built_only_when_auth_is_on() -> None:
    mock = '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["m"]\n'
    assert build_admit_stage(decode(mock), MemoryLimits()) is None
    on = decode(mock + '[auth]\nmode = "keys"\nmaster_key = "sk-master-0123456789"\n')
    built = build_admit_stage(on, MemoryLimits())
    assert isinstance(built, AdmitStage) and built.kind == "admit"


def test_identity_records_are_frozen_so_the_spec_cache_is_safe() -> None:
    k = key(rpm=1)
    with pytest.raises(AttributeError):
        k.rpm = 5  # type: ignore[misc]
    assert msgspec.structs.replace(k, rpm=5).rpm == 5


def test_a_reload_keeps_counting_in_the_same_buckets() -> None:
    clock = Clock()
    old = stage(clock)
    in_flight = admit(old, context(who(key(rpm=2, max_parallel=5))))
    admit(old, context(who(key(rpm=2, max_parallel=5))))
    new = stage(clock)
    carry_admission(Pipeline([old]), Pipeline([new]))
    refused(new, context(who(key(rpm=2, max_parallel=5))))
    answer(old, in_flight, (1, 1))  # the old App's request settles into the shared buckets
    spec = scope_spec("key", "k1", key(rpm=2, max_parallel=5))
    limits = new.limits.of(spec)  # type: ignore[attr-defined]
    assert limits.concurrency is not None and limits.concurrency.in_flight == 1


@pytest.mark.parametrize("ms", [0, 7, 999, 1000, 1001, 59_999, 60_000, 360_000])
def test_duration_ms_writes_what_duration_does(ms: int) -> None:
    assert duration_ms(ms) == duration(ms / 1000)


def test_one_identity_reuses_its_headers_while_its_buckets_stand_still() -> None:
    clock = Clock()
    s = stage(clock)
    identity = who(key(rpm=60, tpm=6000))
    sent = [admit(s, context(identity)).response_headers for _ in range(2)]
    left = [dict(h)[b"x-ratelimit-remaining-requests"] for h in sent]
    assert left == [b"59", b"58"]
    clock.now += 120  # both buckets full again: the same values as the first answer
    again = admit(s, context(identity)).response_headers
    assert again == sent[0]
    assert dict(again)[b"x-ratelimit-reset-requests"] == b"1s"
    # a changed record is a new identity: its new limit shows at once
    changed = admit(s, context(who(key(rpm=10, tpm=6000)))).response_headers
    assert dict(changed)[b"x-ratelimit-limit-requests"] == b"10"
    assert dict(changed)[b"x-ratelimit-remaining-requests"] == b"9"
