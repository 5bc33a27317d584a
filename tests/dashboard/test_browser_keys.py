"""The keys and usage pages in headless Chromium against a real ``modelmux serve`` with
``[auth] mode = "keys"``: a key made and revoked from the page, names shown as text, usage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.conftest import MARKUP_MODEL, call
from tests.dashboard.pages import WAIT_MS, Page, skip_without_chromium
from tests.e2e.proc import ServeProcess, serve_config

pytest.importorskip("playwright.sync_api")
pytestmark = skip_without_chromium

MASTER = "mm-master-for-dashboard-tests"
CONFIG = f"""
[auth]
mode = "keys"
master_key = "{MASTER}"

[[provider]]
name = "a"
type = "mock"
models = ["mock"]
"""


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    proc = serve_config(tmp_path_factory.mktemp("keyed"), CONFIG)
    yield proc
    assert proc.stop() == 0


def chat_with(proc: ServeProcess, key: str) -> int:
    status, _, _ = call(proc, "POST", "/v1/chat/completions",
                        {"model": "mock", "messages": [{"role": "user", "content": "hi"}]},
                        {"content-type": "application/json", "authorization": f"Bearer {key}"})
    return status


def test_a_key_made_on_the_page_works_until_it_is_revoked_there(
        browser: Any, keyed: ServeProcess, tmp_path: Path) -> None:
    admin = Page(browser, keyed)
    try:
        admin.sign_in(MASTER)
        page = admin.page
        page.click("nav a[data-page=keys]")
        page.wait_for_selector("#key-form", state="visible", timeout=WAIT_MS)
        page.fill("#key-name", MARKUP_MODEL)
        page.click("#key-form button")
        page.wait_for_selector("#new-key:not([hidden])", timeout=WAIT_MS)
        key = page.text_content("#new-key-value") or ""
        assert key and chat_with(keyed, key) == 200
        row = page.locator("tr[data-key]", has_text="active").first
        row.wait_for(timeout=WAIT_MS)
        assert row.locator(".key-name").text_content() == MARKUP_MODEL  # as text
        assert page.evaluate("document.querySelectorAll('main script').length") == 0
        page.click("nav a[data-page=usage]")
        page.wait_for_function("() => document.querySelectorAll('#usage tbody tr').length > 0",
                               timeout=WAIT_MS)
        assert "format=csv" in (page.get_attribute("#usage-csv", "href") or "")
        admin.shot(tmp_path, "usage")
        page.click("nav a[data-page=keys]")
        page.locator("tr[data-key] .key-revoke").first.wait_for(timeout=WAIT_MS)
        admin.shot(tmp_path, "keys")
        page.click("tr[data-key] .key-revoke")
        page.wait_for_function("() => [...document.querySelectorAll('.key-status')]"
                               ".some(td => td.textContent === 'revoked')", timeout=WAIT_MS)
        assert chat_with(keyed, key) == 401
        assert admin.errors == [] and admin.dialogs == []
    finally:
        admin.close()


def test_a_viewer_key_reads_keys_but_cannot_make_one(browser: Any, keyed: ServeProcess) -> None:
    status, _, made = call(keyed, "POST", "/admin/keys", {"name": "watcher", "role": "viewer"},
                           {"authorization": f"Bearer {MASTER}", "content-type": "application/json"})
    assert status == 201
    viewer = Page(browser, keyed)
    try:
        viewer.sign_in(made["key"])
        assert viewer.page.text_content("#who") == "signed in: viewer"
        viewer.page.click("nav a[data-page=keys]")
        viewer.page.wait_for_selector("tr[data-key]", timeout=WAIT_MS)
        assert not viewer.page.is_visible("#key-form")
        status, _, _ = call(keyed, "POST", "/admin/keys", {"name": "x"},
                               {"authorization": f"Bearer {made['key']}",
                                "content-type": "application/json"})
        assert status == 403
    finally:
        viewer.close()
