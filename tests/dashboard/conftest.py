"""A real ``modelmux serve`` with the dashboard on (admin and viewer keys), two mock providers
and a model whose name is markup, plus small HTTP helpers."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.proc import ServeProcess, serve_config

ADMIN_KEY = "admin-key-for-tests"
VIEWER_KEY = "viewer-key-for-tests"
MARKUP_MODEL = "<script>alert(1)</script>"
CONFIG = f"""
[admin]
key = "{ADMIN_KEY}"
viewer_key = "{VIEWER_KEY}"

[[provider]]
name = "a"
type = "mock"
models = ["mock", "{MARKUP_MODEL}"]

[[provider]]
name = "b"
type = "mock"
models = ["mock"]
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    proc = serve_config(tmp_path_factory.mktemp("dashboard"), CONFIG)
    yield proc
    assert proc.stop() == 0


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from the system (tests/dashboard/pages.py says which)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.dashboard.pages import CHROMIUM

    with sync_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


def call(proc: ServeProcess, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    """One request; the JSON answer decoded (raw bytes when it is not JSON)."""
    conn = http.client.HTTPConnection(proc.host, proc.port, timeout=10)
    try:
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) \
            else body
        conn.request(method, path, body=data, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
        found = {k.lower(): v for k, v in response.getheaders()}
        try:
            return response.status, found, json.loads(raw)
        except ValueError:
            return response.status, found, raw
    finally:
        conn.close()


def bearer(key: str = ADMIN_KEY) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def chat(proc: ServeProcess, model: str = "mock") -> tuple[int, str]:
    """A chat request: its status and the provider that answered."""
    status, headers, _ = call(proc, "POST", "/v1/chat/completions",
                              {"model": model, "messages": [{"role": "user", "content": "hi"}]},
                              {"content-type": "application/json"})
    return status, headers.get("x-modelmux-provider", "")


def breaker_of(proc: ServeProcess, ident: str) -> dict[str, Any]:
    status, _, body = call(proc, "GET", "/admin/providers", headers=bearer())
    assert status == 200
    found = {d["id"]: d for p in body["data"] for d in p["deployments"]}
    return found[ident]["breaker"]  # type: ignore[no-any-return]


def home_of(proc: ServeProcess) -> Path:
    return Path(proc.proc.args[-1]).parent  # serve --config HOME/config.toml
