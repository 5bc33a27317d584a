"""HTTP2Connection edge cases against the h2 fake: a response that arrives while the request
body is blocked on flow control, h2 library errors translated, a non-ASCII authority."""

from __future__ import annotations

import asyncio
import json

import pytest

from modelmux.upstream import Origin, StreamRefused, Timeouts
from modelmux.upstream.h2connection import HTTP2Connection
from tests.fakes.h2 import H2Fake
from tests.fakes.http import Reply, json_reply
from tests.fakes.openai import FakeOpenAI
from tests.upstream import on_loops, run, until

T = Timeouts(connect=5, first_byte=2, read=5)
JSON = [(b"content-type", b"application/json")]
TOO_LARGE = {"error": {"message": "request too large", "type": "invalid_request_error"}}


def answering(status: int) -> FakeOpenAI:
    app = FakeOpenAI()

    async def handle(_: object) -> Reply:
        return json_reply(status, TOO_LARGE)

    app.handle = handle  # type: ignore[assignment,method-assign]
    return app


async def open_conn(fake: H2Fake) -> HTTP2Connection:
    conn = HTTP2Connection(Origin("http", "127.0.0.1", fake.port))
    await conn.connect(5)
    return conn


@pytest.mark.parametrize("early", ["end", "reset", "head"])
@on_loops
def test_an_early_answer_stops_a_blocked_request_body(loop: str, early: str) -> None:
    """RFC 9113 section 8.1: the peer answered before the body was sent; the client stops
    sending and the caller gets the peer's own response."""

    async def main() -> None:
        async with H2Fake(answering(413)) as fake:
            fake.early = early  # type: ignore[assignment]
            conn = await open_conn(fake)
            body = b"x" * 200_000  # beyond the 64 KiB window the fake never opens
            async with await conn.handle_request(b"POST", b"/v1/chat/completions", JSON,
                                                 body, T) as stream:
                assert stream.status == 413
                got = await stream.read()
                if early == "head":
                    assert got == b""  # the reset ended the response after its head
                else:
                    assert json.loads(got) == TOO_LARGE
            if early == "end":
                await fake.wait_for(lambda: fake.resets == 1)  # we stopped with RST_STREAM
            assert conn.is_idle() and not conn.is_closed()
            fake.early = None
            async with await conn.handle_request(b"GET", b"/v1/models", [], b"", T) as again:
                assert again.status == 413  # the connection still carries requests
                assert json.loads(await again.read()) == TOO_LARGE
            await conn.aclose()

    run(loop, main())


@on_loops
def test_a_lowered_stream_limit_between_claim_and_send_is_a_refused_stream(loop: str) -> None:
    async def main() -> None:
        async with H2Fake(FakeOpenAI(), max_streams=2) as fake:
            fake.gate = asyncio.Event()
            conn = await open_conn(fake)
            body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
            first = asyncio.create_task(conn.handle_request(
                b"POST", b"/v1/chat/completions", JSON, body.encode(), T))
            await fake.wait_for(lambda: len(fake.app.requests) == 1)
            conn.claim()
            fake.lower_max_streams(1)
            await until(lambda: conn.limit == 1)
            with pytest.raises(StreamRefused, match="stream"):
                await conn.handle_request(b"POST", b"/v1/chat/completions", JSON,
                                          body.encode(), T)
            assert conn.active_streams == 1 and not conn.is_closed()
            fake.gate.set()
            async with await first as stream:
                assert stream.status == 200 and json.loads(await stream.read())["choices"]
            await conn.aclose()

    run(loop, main())


def test_a_non_ascii_authority_goes_out_as_idna() -> None:
    async def main() -> None:
        async with H2Fake(FakeOpenAI()) as fake:
            conn = await open_conn(fake)
            conn.origin = Origin("http", "bücher.test", fake.port)  # the name requests carry
            async with await conn.handle_request(b"GET", b"/v1/models", [], b"", T) as stream:
                await stream.read()
            assert fake.authorities == [f"xn--bcher-kva.test:{fake.port}"]
            await conn.aclose()

    run("asyncio", main())
