"""Shared fixtures: the event-loop flavours every async test body runs under."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
    uvloop = None

LOOPS = ["asyncio"] + (["uvloop"] if uvloop is not None else [])

Runner = Callable[[Coroutine[Any, Any, Any]], Any]


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Runner:
    """Run a coroutine to completion on the parametrised event loop (asyncio or uvloop)."""

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        if request.param == "uvloop":
            return uvloop.run(coro)
        return asyncio.run(coro)

    return runner


@pytest.fixture(autouse=True)
def _upstream_http1(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pools built without ``http1`` use ``MODELMUX_SERVER_HTTP1``'s backend (CI's h11 leg)."""
    backend = os.environ.get("MODELMUX_SERVER_HTTP1")
    if backend:
        monkeypatch.setattr("modelmux.upstream.pool.DEFAULT_HTTP1", backend)
