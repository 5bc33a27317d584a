"""A dashboard page in headless Chromium (Debian's ``chromium``, driven by Playwright's Python
package pointed at it: no browser download), collecting console errors and dialogs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.proc import ServeProcess

CHROMIUM = os.environ.get("MODELMUX_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
WAIT_MS = 15_000

skip_without_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                           reason="no chromium here (CI installs it)")


class Page:
    """A fresh browser context on the dashboard, collecting console errors and dialogs."""

    def __init__(self, browser: Any, gateway: ServeProcess) -> None:
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.response = self.page.goto(f"{gateway.url}/dashboard")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def sign_in(self, key: str) -> None:
        self.page.fill("#key", key)
        self.page.click("#signin-form button")
        self.page.wait_for_selector("#nav:not([hidden])", timeout=WAIT_MS)

    def shot(self, tmp_path: Path, name: str) -> None:
        path = tmp_path / f"dashboard-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")

    def close(self) -> None:
        self.context.close()
