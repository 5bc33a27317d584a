"""A stream that fails after its first byte with an unexpected exception (not a
``ModelMuxError``): the client gets an error event and the deployment's breaker a failure."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from modelmux.providers.base import ChatCall
from tests.conftest import Runner
from tests.observability.helpers import chat_body, gateway, request


def test_an_unexpected_exception_mid_stream_counts_against_the_breaker(run: Runner) -> None:
    async def main() -> None:
        async with gateway() as (app, port, _, _):
            mock = next(p for p in app.providers if p.name == "mock")
            real = mock.stream

            async def broken(call: ChatCall) -> AsyncGenerator[bytes, None]:
                inner = real(call)
                try:
                    yield await anext(inner)
                finally:
                    await inner.aclose()
                raise RuntimeError("a bug in the relay")

            mock.stream = broken  # type: ignore[method-assign]
            status, _, body = await request(port, "POST", "/v1/chat/completions",
                                            chat_body("mock", stream=True))
            assert status == 200
            assert b'"code":"internal_error"' in body and b"[DONE]" not in body
            breaker = app.router.breaker("mock/mock").snapshot(0.0)
            assert breaker["consecutive_failures"] == 1
            assert breaker["window_failures"] == 1

    run(main())
