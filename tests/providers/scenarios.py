"""The failure scenarios every translated provider's tests run, against any ``serve`` that
starts the provider's fake and a gateway for it (``serve(answer=..., extra=...)`` yielding
``(gateway, fake)``, the fake with ``faults`` and ``requests``).

Each asserts what every provider shares and returns what the caller checks further.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import openai

from tests.fakes.answers import TEXT, TOOLS
from tests.fakes.http import Split
from tests.providers.harness import (
    Gateway,
    Seen,
    ask_each_way,
    ask_streamed,
    call_error,
    expected,
    mid_stream_error,
    same,
)

Serve = Callable[..., AbstractAsyncContextManager[tuple[Gateway, Any]]]


async def every_way(serve: Serve, model: str, split: Split, then: Callable[[Any], None], *,
                    check: Callable[[Seen, Seen], None] = same) -> None:
    """A text answer and a tool-call answer, cut as ``split``, reach the SDK whole and streamed
    as they were sent (``ask_each_way``); ``then(fake)`` checks what the upstream saw."""
    for answer in (TEXT, TOOLS):
        async with serve(answer=answer, split=split) as (gw, fake):
            async with gw.client() as client:
                await ask_each_way(client, model, answer, check=check)
            then(fake)


async def fault_error(serve: Serve, model: str, fault: str, exc: type[openai.APIStatusError],
                      status: int, code: str, *, stream: bool) -> openai.APIStatusError:
    """With retries off, one upstream ``fault`` reaches the SDK as ``exc`` with ``status`` and
    ``code``, after exactly one upstream request."""
    async with serve(extra="max_retries = 0") as (gw, fake), gw.client() as client:
        fake.faults.append(fault)
        error = await call_error(client, model, exc, stream=stream)
        assert error.status_code == status
        assert error.code == code
        assert len(fake.requests) == 1
    return error


async def recovers(serve: Serve, model: str, faults: list[str],
                   check: Callable[[Seen, Seen], None] = same) -> None:
    """Faults before the first byte are retried until the answer streams whole."""
    async with serve(answer=TOOLS) as (gw, fake), gw.client() as client:
        fake.faults.extend(faults)
        check(await ask_streamed(client, model), expected(TOOLS, model, usage=False))
        assert len(fake.requests) == len(faults) + 1


async def breaks_mid_stream(serve: Serve, model: str, fault: str, code: str) -> None:
    """A stream that began well and then hits ``fault`` ends in an SDK error with ``code``."""
    async with serve() as (gw, fake), gw.client() as client:
        fake.faults.append(fault)
        assert (await mid_stream_error(client, model)).code == code
        assert len(fake.requests) == 1


async def refuses_n(serve: Serve, model: str, provider: str) -> None:
    """``n`` above one is refused, whole and streamed, naming ``provider``, with no upstream
    call."""
    async with serve() as (gw, fake), gw.client() as client:
        for stream in (False, True):
            error = await call_error(client, model, openai.BadRequestError, stream=stream, n=2)
            assert error.param == "n"
            assert f"provider {provider}" in error.message
        assert fake.requests == []
