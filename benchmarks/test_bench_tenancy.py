"""pytest-benchmark: what authentication and the per-key limit check cost per request.

Run: ``python -m pytest benchmarks/test_bench_tenancy.py --benchmark-timer=time.process_time``.
One round runs ``REQUESTS`` requests through the pipeline as the chat door drives it
(``before_call``, then ``answered`` when some stage observes answers) inside a running event
loop; divide by ``REQUESTS`` for the cost per request. Every pipeline ends with a stand-in
for the route stage, as the App's always does, and every answer reports its usage, as the
call stage records it. ``off``: auth off, so no stage of its own is built. ``key``: a key
found in the authenticator's cache (SQLite store behind it, not reached), no limits, through
the stage the App builds (``KeyGate``). ``key_limited``: the same with rpm and tpm so large
that the buckets stay full and the ``x-ratelimit-*`` headers are sent again as they were.
``key_busy``: rpm and tpm whose counts change on every request, so the headers are written
anew each time, as for a caller in steady use. The context is built in every scenario alike,
so the differences are the stages' own cost. Redis is I/O (one round trip per limited
scope), not measured here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from modelmux.api.chat import answered
from modelmux.config.features import AuthConfig
from modelmux.observability.record import RequestRecord
from modelmux.pipeline.authenticate import KeyGate
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Pipeline, Stage
from modelmux.providers.base import CallStats
from modelmux.routing.memory import MemoryLimits
from modelmux.schemas.openai_chat import request_decoder
from modelmux.tenancy.authn import Authenticator
from modelmux.tenancy.keys import generate_key
from modelmux.tenancy.open import open_store
from modelmux.tenancy.records import Key

pytest.importorskip("pytest_benchmark")

REQUESTS = 2000
BODY = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
REQUEST = request_decoder.decode(BODY)
KEYS = {"plain": {}, "limited": {"rpm": 10**9, "tpm": 10**12},
        "busy": {"rpm": 10**6, "tpm": 10**9}}


class Route(Stage):
    """Stands in for the route stage every App pipeline ends with."""

    kind = name = "route"

    async def on_request(self, ctx: RequestContext) -> None:
        return None


class _Exchange:
    status = 200


def _rounds(pipeline: Pipeline, headers: list[tuple[bytes, bytes]]) -> Callable[[], None]:
    exchange = _Exchange()
    loop = asyncio.new_event_loop()

    async def requests() -> None:
        for _ in range(REQUESTS):
            record = RequestRecord("r1", "/v1/chat/completions")
            ctx = RequestContext("openai.chat", REQUEST, BODY, headers, "r1", record,
                                 "127.0.0.1:1", response_headers=[])
            try:
                await pipeline.before_call(ctx)
            except BaseException as exc:
                if pipeline.observes:
                    answered(pipeline, ctx, exchange, exc)  # type: ignore[arg-type]
                raise
            stats = record.stats = CallStats()
            stats.tokens = (10, 5)
            if pipeline.observes:
                answered(pipeline, ctx, exchange, None)  # type: ignore[arg-type]

    def one_round() -> None:
        loop.run_until_complete(requests())

    one_round.loop = loop  # type: ignore[attr-defined]
    return one_round


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Authenticator, dict[str, list[Any]]]]:
    """An authenticator with the stored keys of ``KEYS`` in its cache."""
    path = tmp_path_factory.mktemp("tenancy") / "bench.db"
    config = AuthConfig(mode="keys", master_key="sk-master-bench", sqlite_path=str(path),
                        key_cache_seconds=3600)
    loop = asyncio.new_event_loop()
    auth = Authenticator(config, open_store(config, path.parent))
    made = {}
    for name, limits in KEYS.items():
        new = generate_key()
        key = Key(id=name, prefix=new.prefix, hash=new.hash, **limits)
        loop.run_until_complete(auth.open())
        loop.run_until_complete(auth.store.create_key(key))
        headers = [(b"authorization", b"Bearer " + new.secret.encode())]
        loop.run_until_complete(auth.identify(headers, "127.0.0.1:1"))  # now cached
        made[name] = headers
    yield auth, made
    loop.run_until_complete(auth.aclose())
    loop.close()


def _run(benchmark: Any, one_round: Callable[[], None]) -> None:
    try:
        benchmark.pedantic(one_round, rounds=20, warmup_rounds=2)
    finally:
        one_round.loop.close()  # type: ignore[attr-defined]


def _keyed(auth: Authenticator) -> Pipeline:
    """The pipeline the App builds with ``[auth] mode = "keys"`` (``App.build_pipeline``)."""
    return Pipeline([KeyGate(auth, MemoryLimits()), Route()])


def test_off(benchmark: Any) -> None:
    _run(benchmark, _rounds(Pipeline([Route()]), []))


@pytest.mark.parametrize("key", ["plain", "limited", "busy"])
def test_key(benchmark: Any, keyed: tuple[Authenticator, dict[str, Any]], key: str) -> None:
    auth, made = keyed
    _run(benchmark, _rounds(_keyed(auth), made[key]))
