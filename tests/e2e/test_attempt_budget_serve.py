"""``modelmux serve`` as a process in front of two fake OpenAI upstreams: ``[routing]
max_attempts`` caps provider retries and fallback together, and the official ``openai`` SDK
gets the last upstream error."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest

from tests.e2e.proc import serve_config
from tests.fakes.openai import FakeOpenAI
from tests.upstream import run


def test_the_budget_of_tries_through_a_real_serve(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeOpenAI() as first, FakeOpenAI() as second:
            config = "[routing]\nmax_attempts = 3\n" + "".join(
                f'[[provider]]\nname = "p{i}"\ntype = "openai_compatible"\nmodels = ["m"]\n'
                f'base_url = "{fake.origin}/v1"\nmax_retries = 1\n'
                for i, fake in enumerate((first, second)))
            first.faults.extend(["500", "500"])
            second.faults.extend(["429", "429"])
            proc = await asyncio.to_thread(serve_config, tmp_path, config)
            try:
                client = openai.AsyncOpenAI(base_url=proc.url + "/v1", api_key="x",
                                            max_retries=0, timeout=20.0)
                async with client:
                    with pytest.raises(openai.RateLimitError) as caught:
                        await client.chat.completions.create(
                            model="m", messages=[{"role": "user", "content": "hi"}])
                    # p0 once and its retry, then p1 once: its retry would be the fourth try
                    assert (len(first.requests), len(second.requests)) == (2, 1)
                    assert caught.value.response.headers["x-modelmux-attempts"] == "3"
                    assert caught.value.response.headers["x-modelmux-provider"] == "p1"
                    chat = await client.chat.completions.create(
                        model="m", messages=[{"role": "user", "content": "hi"}])
                    assert chat.choices[0].message.content  # still serving
            finally:
                assert await asyncio.to_thread(proc.stop) == 0

    run("asyncio", main(), timeout=60)
