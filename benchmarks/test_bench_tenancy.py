"""pytest-benchmark: what authentication and the per-key limit check cost per request.

Run: ``python -m pytest benchmarks/test_bench_tenancy.py``. One round runs ``REQUESTS``
requests through the door's pipeline frame (``api.chat.run_observed`` around
``Pipeline.before_call``, as the chat door does) inside a running event loop; divide by
``REQUESTS`` for the cost per request. ``off``: auth off, so no stage is built. ``key``: a key
found in the authenticator's cache (SQLite store behind it, not reached), no limits.
``key_limited``: the same with rpm and tpm, checked in the in-process limit store. The
context is built in every scenario alike, so the differences are the stages' own cost. Redis
is I/O (one round trip per limited scope), not measured here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from modelmux.api.chat import run_observed
from modelmux.config.features import AuthConfig
from modelmux.observability.record import RequestRecord
from modelmux.pipeline.admit import AdmitStage
from modelmux.pipeline.authenticate import AuthenticateStage
from modelmux.pipeline.context import RequestContext
from modelmux.pipeline.stage import Pipeline
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


class _App:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline


class _Exchange:
    status = 200


async def _served(app: Any, exchange: Any, ctx: RequestContext) -> None:
    await app.pipeline.before_call(ctx)


def _rounds(pipeline: Pipeline, headers: list[tuple[bytes, bytes]]) -> Callable[[], None]:
    app, exchange = _App(pipeline), _Exchange()
    loop = asyncio.new_event_loop()

    async def requests() -> None:
        for _ in range(REQUESTS):
            ctx = RequestContext("openai.chat", REQUEST, BODY, headers, "r1",
                                 RequestRecord("r1", "/v1/chat/completions"), "127.0.0.1:1",
                                 response_headers=[])
            if pipeline.observes:
                await run_observed(app, exchange, ctx, _served)  # type: ignore[arg-type]
            else:
                await _served(app, exchange, ctx)

    def one_round() -> None:
        loop.run_until_complete(requests())

    one_round.loop = loop  # type: ignore[attr-defined]
    return one_round


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, list[Any]]]:
    """An authenticator with two stored keys (one limited) in its cache."""
    path = tmp_path_factory.mktemp("tenancy") / "bench.db"
    config = AuthConfig(mode="keys", master_key="sk-master-bench", sqlite_path=str(path),
                        key_cache_seconds=3600)
    loop = asyncio.new_event_loop()
    auth = Authenticator(config, open_store(config, path.parent))
    made = []
    for name, limits in (("plain", {}), ("limited", {"rpm": 10**9, "tpm": 10**12})):
        new = generate_key()
        key = Key(id=name, prefix=new.prefix, hash=new.hash, **limits)
        loop.run_until_complete(auth.open())
        loop.run_until_complete(auth.store.create_key(key))
        headers = [(b"authorization", b"Bearer " + new.secret.encode())]
        loop.run_until_complete(auth.identify(headers, "127.0.0.1:1"))  # now cached
        made.append(headers)
    yield auth, made
    loop.run_until_complete(auth.aclose())
    loop.close()


def _run(benchmark: Any, one_round: Callable[[], None]) -> None:
    try:
        benchmark.pedantic(one_round, rounds=20, warmup_rounds=2)
    finally:
        one_round.loop.close()  # type: ignore[attr-defined]


def test_off(benchmark: Any) -> None:
    _run(benchmark, _rounds(Pipeline([]), []))


def test_key(benchmark: Any, keyed: tuple[Any, list[Any]]) -> None:
    auth, (plain, _) = keyed
    stages = [AuthenticateStage(auth), AdmitStage(MemoryLimits())]
    _run(benchmark, _rounds(Pipeline(stages), plain))


def test_key_limited(benchmark: Any, keyed: tuple[Any, list[Any]]) -> None:
    auth, (_, limited) = keyed
    stages = [AuthenticateStage(auth), AdmitStage(MemoryLimits())]
    _run(benchmark, _rounds(Pipeline(stages), limited))
