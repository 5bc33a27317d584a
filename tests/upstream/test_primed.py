"""``upstream.primed``: a request's outcome left for the coroutine that would make it."""

from __future__ import annotations

import asyncio
import contextvars

from modelmux.upstream import ConnectionPool
from modelmux.upstream.errors import UpstreamTimeout
from modelmux.upstream.origin import Origin, ResponseHead
from modelmux.upstream.primed import PRIMED, InHand, Primed
from modelmux.upstream.response import Response
from tests.fakes.openai import FakeOpenAI

BODY = b'{"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}'


def test_the_primed_outcome_is_taken_once_and_only_by_its_request(run) -> None:
    async def main() -> None:
        async with FakeOpenAI() as fake, ConnectionPool() as pool:
            url = f"{fake.origin}/v1/chat/completions"
            headers = [(b"content-type", b"application/json")]
            error = UpstreamTimeout("timed out waiting for the response head", phase="first_byte")
            PRIMED.set(Primed(url, BODY, error=error))
            other = await pool.request(b"POST", url, headers, BODY + b" ")  # another body
            assert other.status == 200 and await other.read()
            try:
                await pool.request(b"POST", url, headers, BODY)
            except UpstreamTimeout as exc:
                assert exc is error
            else:
                raise AssertionError("the primed error was not raised")
            again = await pool.request(b"POST", url, headers, BODY)  # sent, this time
            assert again.status == 200 and await again.read()
            assert len(fake.raw_bodies) == 2

            origin = Origin("http", "127.0.0.1", fake.port)
            kept = Response(InHand(origin, b'{"error": "x"}'),
                            ResponseHead(200, [(b"content-type", b"application/json")], "OK"),
                            None)
            primed = Primed(url, BODY, response=kept)
            context = contextvars.copy_context()
            context.run(PRIMED.set, primed)
            copy = context.copy()  # a task started from the handler's task sees it too
            loop = asyncio.get_running_loop()
            got = await loop.create_task(pool.request(b"POST", url, headers, BODY),
                                         context=context)
            assert got is kept and await got.read() == b'{"error": "x"}'
            assert primed.taken and not primed.matches(url, BODY)
            again = await loop.create_task(pool.request(b"POST", url, headers, BODY),
                                           context=copy)
            assert again is not kept and await again.read()

    run(main())
