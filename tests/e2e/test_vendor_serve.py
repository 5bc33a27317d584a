"""``modelmux serve`` as a process in front of fake Gemini, Cohere and Vertex AI servers: the
official ``openai`` SDK embeds through ``gemini``, ``cohere`` and ``vertex`` (batched to their
limits) and chats with a Gemini model on ``vertex``, streamed and not."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import openai

from tests.api.test_embeddings import floats
from tests.e2e.proc import serve_config
from tests.fakes.answers import TEXT
from tests.fakes.cohere import FakeCohere
from tests.fakes.gemini import FakeGemini
from tests.fakes.google_oauth import FakeGoogleOAuth
from tests.fakes.openai import vector_of
from tests.fakes.vertex import FakeVertex
from tests.upstream import run

TEXTS = [f"passage {i}" for i in range(150)]


def test_embeddings_and_vertex_gemini_through_a_real_serve(tmp_path: Path) -> None:
    async def main() -> None:
        async with FakeGemini() as gem, FakeCohere() as co, FakeGoogleOAuth() as oauth, \
                FakeVertex(token_ok=oauth.valid) as vertex:
            config = f"""
[[provider]]
name = "gem"
type = "gemini"
api_key = "AIza-test"
base_url = "{gem.origin}"
models = ["text-embedding-004"]

[[provider]]
name = "co"
type = "cohere"
api_key = "co-test"
base_url = "{co.origin}"
models = ["embed-v4.0"]
embed_input_type = "search_query"

[[provider]]
name = "vtx"
type = "vertex"
project = "p1"
region = "europe-west4"
base_url = "{vertex.origin}"
models = ["gemini-2.0-flash", "text-embedding-005"]
credentials_json = '''{json.dumps(oauth.service_account_info())}'''
"""
            proc = await asyncio.to_thread(serve_config, tmp_path, config)
            try:
                client = openai.AsyncOpenAI(base_url=proc.url + "/v1", api_key="x",
                                            max_retries=0, timeout=20.0)
                async with client:
                    got = await client.embeddings.create(model="text-embedding-004",
                                                         input=TEXTS)
                    assert [floats(d.embedding) for d in got.data] == [vector_of(t)
                                                                       for t in TEXTS]
                    assert [len(b["requests"]) for b in gem.embed_bodies] == [100, 50]
                    got = await client.embeddings.create(model="embed-v4.0", input=TEXTS)
                    assert [floats(d.embedding) for d in got.data] == [vector_of(t)
                                                                       for t in TEXTS]
                    assert [len(b["texts"]) for b in co.embed_bodies] == [96, 54]
                    assert {b["input_type"] for b in co.embed_bodies} == {"search_query"}
                    assert got.usage.prompt_tokens == 2 * len(TEXTS)
                    chat = await client.chat.completions.create(
                        model="gemini-2.0-flash", messages=[{"role": "user", "content": "hi"}])
                    assert chat.choices[0].message.content == TEXT.text
                    stream = await client.chat.completions.create(
                        model="gemini-2.0-flash", messages=[{"role": "user", "content": "hi"}],
                        stream=True)
                    text = "".join([c.choices[0].delta.content or "" async for c in stream
                                    if c.choices])
                    assert text == TEXT.text
                    assert vertex.gemini.paths[0]["region"] == "europe-west4"
                    got = await client.embeddings.create(model="text-embedding-005",
                                                         input=TEXTS)
                    assert [floats(d.embedding) for d in got.data] == [vector_of(t)
                                                                       for t in TEXTS]
                    assert got.usage.prompt_tokens == 2 * len(TEXTS)
                    assert vertex.gemini.paths[-1]["method"] == "predict"
            finally:
                assert await asyncio.to_thread(proc.stop) == 0

    run("asyncio", main(), timeout=60)
