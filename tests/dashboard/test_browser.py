"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright's
Python package pointed at it: no browser download) against a real ``modelmux serve``.

Screenshots of each page go to the test's temporary folder; the log names each file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.conftest import (
    ADMIN_KEY,
    MARKUP_MODEL,
    VIEWER_KEY,
    breaker_of,
    chat,
)
from tests.dashboard.pages import WAIT_MS, Page, skip_without_chromium
from tests.e2e.proc import ServeProcess

pytest.importorskip("playwright.sync_api")
pytestmark = skip_without_chromium

@pytest.fixture
def admin_page(browser: Any, gateway: ServeProcess) -> Iterator[Page]:
    page = Page(browser, gateway)
    page.sign_in(ADMIN_KEY)
    yield page
    page.close()


def test_sign_in_shows_live_traffic_with_a_strict_csp_and_no_console_errors(
        admin_page: Page, gateway: ServeProcess, tmp_path: Path) -> None:
    page = admin_page.page
    csp = admin_page.response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe" not in csp
    page.wait_for_function("() => document.getElementById('requests-total').textContent !== '–'",
                           timeout=WAIT_MS)
    before = int(page.text_content("#requests-total") or "0")
    for _ in range(5):
        assert chat(gateway)[0] == 200
    page.wait_for_function(f"() => Number(document.getElementById('requests-total').textContent) "
                           f">= {before + 5}", timeout=WAIT_MS)
    page.wait_for_selector("#chart-rps canvas", timeout=WAIT_MS)
    admin_page.shot(tmp_path, "overview")
    page.click("nav a[data-page=config]")
    page.wait_for_function("() => document.getElementById('config-text').textContent.includes('admin')",
                           timeout=WAIT_MS)
    assert ADMIN_KEY not in (page.text_content("#config-text") or "")
    admin_page.shot(tmp_path, "config")
    assert admin_page.errors == []


def test_a_breaker_opened_from_the_page_makes_the_router_skip_it(
        admin_page: Page, gateway: ServeProcess, tmp_path: Path) -> None:
    page = admin_page.page
    page.click("nav a[data-page=providers]")
    row = 'tr[data-deployment="a/mock"]'
    page.wait_for_selector(f"{row} .breaker-toggle", timeout=WAIT_MS)
    page.click(f"{row} .breaker-toggle")
    try:
        page.wait_for_function(
            "() => document.querySelector('tr[data-deployment=\"a/mock\"] .breaker')"
            ".textContent.startsWith('open')", timeout=WAIT_MS)
        assert breaker_of(gateway, "a/mock")["state"] == "open"
        assert {chat(gateway) for _ in range(4)} == {(200, "b")}
        admin_page.shot(tmp_path, "providers")
        page.click(f"{row} .breaker-toggle")
        page.wait_for_function(
            "() => document.querySelector('tr[data-deployment=\"a/mock\"] .breaker')"
            ".textContent.startsWith('closed')", timeout=WAIT_MS)
    finally:
        if breaker_of(gateway, "a/mock")["state"] != "closed":
            from tests.dashboard.conftest import bearer, call
            call(gateway, "POST", "/admin/breaker", {"deployment": "a/mock", "state": "closed"},
                 bearer())
    assert breaker_of(gateway, "a/mock")["state"] == "closed"
    assert admin_page.errors == []


def test_a_model_named_like_a_script_tag_renders_as_text(admin_page: Page) -> None:
    page = admin_page.page
    page.click("nav a[data-page=providers]")
    ident = f"a/{MARKUP_MODEL}"
    cells = page.locator("td.deployment-id")
    cells.first.wait_for(timeout=WAIT_MS)
    page.wait_for_function(
        "ident => [...document.querySelectorAll('td.deployment-id')]"
        ".some(td => td.textContent === ident)", arg=ident, timeout=WAIT_MS)
    assert page.evaluate("document.querySelectorAll('main script').length") == 0
    assert admin_page.dialogs == [] and admin_page.errors == []


def test_a_post_without_the_csrf_token_is_refused(admin_page: Page, gateway: ServeProcess) -> None:
    status, code = admin_page.page.evaluate("""async () => {
        const r = await fetch('/admin/breaker', {method: 'POST', credentials: 'same-origin',
            headers: {'content-type': 'application/json'},
            body: JSON.stringify({deployment: 'a/mock', state: 'open'})});
        return [r.status, (await r.json()).error.code];
    }""")
    assert (status, code) == (403, "csrf_failed")
    assert breaker_of(gateway, "a/mock")["state"] == "closed"


def test_a_viewer_sees_no_controls_and_cannot_change(browser: Any, gateway: ServeProcess) -> None:
    viewer = Page(browser, gateway)
    try:
        viewer.sign_in(VIEWER_KEY)
        page = viewer.page
        page.click("nav a[data-page=providers]")
        page.wait_for_selector('tr[data-deployment="a/mock"]', timeout=WAIT_MS)
        assert not page.is_visible('tr[data-deployment="a/mock"] .breaker-toggle')
        assert page.text_content("#who") == "signed in: viewer"
        assert viewer.errors == []
    finally:
        viewer.close()


def test_limits_set_from_the_page_show_as_overrides_of_the_config(
        admin_page: Page, gateway: ServeProcess) -> None:
    from tests.dashboard.conftest import bearer, call

    page = admin_page.page
    page.click("nav a[data-page=providers]")
    row = 'tr[data-deployment="b/mock"]'
    page.wait_for_selector(f"{row} .rpm-input", timeout=WAIT_MS)
    page.fill(f"{row} .rpm-input", "900")
    page.click(f"{row} .limits-apply")
    try:
        page.wait_for_selector(f"{row} span.override", timeout=WAIT_MS)
        assert "config: none" in (page.text_content(row) or "")
        _, _, body = call(gateway, "GET", "/admin/providers", headers=bearer())
        found = {d["id"]: d for p in body["data"] for d in p["deployments"]}
        assert found["b/mock"]["limits"]["rpm"] == 900
    finally:
        call(gateway, "POST", "/admin/limits", {"deployment": "b/mock", "rpm": None}, bearer())
    assert admin_page.errors == []
