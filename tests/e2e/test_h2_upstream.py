"""``modelmux serve`` as a real process in front of another over h2c (``http2 = true``).

The upstream is a second ``modelmux serve`` with a mock model: ModelMux's own server speaks
HTTP/2 with prior knowledge on its port. ``http2 = true`` has no HTTP/1.1 fallback, so a
successful answer means the proxy spoke HTTP/2 upstream.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.e2e.proc import ServeProcess, serve_config

UPSTREAM = """
[[provider]]
name = "demo"
type = "mock"
models = ["mock"]
text = "abcdefghij"
repeat = 3
chunks = 6
"""

PROXY = """
[[provider]]
name = "up"
type = "openai_compatible"
models = ["mock"]
base_url = "{url}/v1"
http2 = true
"""


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    home = tmp_path_factory.mktemp("home")
    upstream = serve_config(home, UPSTREAM, "up.toml")
    try:
        front = serve_config(home, PROXY.format(url=upstream.url), "proxy.toml")
        yield front
        assert front.stop() == 0
    finally:
        assert upstream.stop() == 0


def test_sdk_through_the_proxy_to_an_h2c_upstream(proxy: ServeProcess) -> None:
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="unused", max_retries=0,
                           timeout=10)
    with client:
        done = client.chat.completions.create(model="mock", messages=[
            {"role": "user", "content": "hi"}])
        assert done.choices[0].message.content == "abcdefghij" * 3
        stream = client.chat.completions.create(model="mock", stream=True, messages=[
            {"role": "user", "content": "hi"}])
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "abcdefghij" * 3
    assert not any("no HTTP/2 handshake" in line for line in proxy.lines)

