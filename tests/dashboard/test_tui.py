"""``modelmux tui`` in Textual's headless pilot against a real ``modelmux serve``: the views
render, live numbers move with traffic, keys switch views and change a breaker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from modelmux.cli.admin_client import AdminClient, AdminError
from modelmux.cli.tui_views import Recent, deployment_rows, overview_lines, spend_rows
from tests.dashboard.conftest import ADMIN_KEY, VIEWER_KEY, bearer, breaker_of, call, chat
from tests.e2e.proc import ServeProcess

pytest.importorskip("textual")

WAIT = 15.0


async def until(pilot: object, ready: Callable[[], bool], what: str) -> None:
    """Let the app run until ``ready()`` (bounded in time and in steps)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not ready():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)  # type: ignore[attr-defined]


def test_views_render_update_with_traffic_and_keys_navigate(gateway: ServeProcess,
                                                            tmp_path: Path) -> None:
    from textual.widgets import DataTable, Static, TabbedContent

    from modelmux.cli.tui_app import GatewayApp

    async def main() -> None:
        client = AdminClient(gateway.url, ADMIN_KEY)
        assert client.connect() == "admin"
        app = GatewayApp(client)
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: app.snapshots_seen >= 1, "the first snapshot")
            before = app.snapshot["requests_total"]
            await asyncio.to_thread(lambda: [chat(gateway) for _ in range(3)])
            await until(pilot, lambda: app.snapshot["requests_total"] >= before + 3,
                        "the request counter to move")
            figures = str(app.query_one("#figures", Static).render())
            assert f"requests      {app.snapshot['requests_total']}" in figures
            shot = app.save_screenshot("tui-overview.svg", str(tmp_path))
            print(f"screenshot: {shot}")
            await pilot.press("2")
            assert app.query_one(TabbedContent).active == "providers"
            table = app.query_one("#deployments", DataTable)
            await until(pilot, lambda: table.row_count >= 3, "the providers table")
            ids = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
            assert "a/<script>alert(1)</script>" in ids  # shown as plain text
            assert ids == sorted(ids)  # a/<script>..., a/mock, b/mock
            print(f"screenshot: {app.save_screenshot('tui-providers.svg', str(tmp_path))}")
            await pilot.press("down", "down", "up")
            assert app.selected_deployment() == "a/mock"
            await pilot.press("b")
            await until(pilot, lambda: breaker_of(gateway, "a/mock")["state"] == "open",
                        "the breaker to open")
            await until(pilot, lambda: app.snapshot["deployments"]["a/mock"]["breaker"]["state"]
                        == "open", "the table to show it open")
            assert app.selected_deployment() == "a/mock"  # the redraw kept the cursor
            await pilot.press("b")
            await until(pilot, lambda: breaker_of(gateway, "a/mock")["state"] == "closed",
                        "the breaker to close")
            await pilot.press("3")
            assert app.query_one(TabbedContent).active == "errors"
            await pilot.press("q")

    try:
        asyncio.run(main())
    finally:
        call(gateway, "POST", "/admin/breaker", {"deployment": "a/mock", "state": "closed"},
             bearer())


def test_a_viewer_cannot_change_breakers_and_a_wrong_key_is_refused(gateway: ServeProcess) -> None:
    with pytest.raises(AdminError, match="403"):
        AdminClient(gateway.url, "wrong").connect()
    with pytest.raises(AdminError, match="wants a key"):
        AdminClient(gateway.url).connect()
    viewer = AdminClient(gateway.url, VIEWER_KEY)
    viewer.connect()
    with pytest.raises(AdminError, match="insufficient|admin role"):
        viewer.post("/admin/breaker", {"deployment": "a/mock", "state": "open"})


def test_recent_errors_and_rows_are_plain_data() -> None:
    recent = Recent()
    recent.add({"requests_per_s": 2.5, "errors": {"502": 2}, "upstream_errors": {"timeout": 1}})
    assert list(recent.rates) == [2.5]
    assert [(kind, count) for _, kind, count in recent.errors] == [("upstream timeout", 1),
                                                                    ("HTTP 502", 2)]
    snap = {"requests_total": 4, "deployments": {"p/[b]m": {
        "breaker": {"state": "open", "pinned": True}, "in_flight": 1, "ewma_ttft_ms": None,
        "limits": {"rpm": 5}}}}
    assert deployment_rows(snap) == [("p/[b]m", "open (held)", "1", "–", "5", "–")]
    assert overview_lines(snap)[0] == "requests      4"


def test_the_command_exits_1_with_a_reason_when_no_gateway_answers(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from modelmux.cli.main import main

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.delenv("MODELMUX_MASTER_KEY", raising=False)
    assert main(["tui", "--url", f"http://127.0.0.1:{port}"]) == 1
    assert "modelmux tui: cannot reach" in capsys.readouterr().err


def test_the_spend_view_lists_top_teams_and_keys(tmp_path: Path) -> None:
    from textual.widgets import DataTable

    from modelmux.cli.tui_app import GatewayApp
    from tests.dashboard.test_browser_keys import CONFIG, MASTER, chat_with
    from tests.e2e.proc import serve_config

    proc = serve_config(tmp_path, CONFIG)
    try:
        headers = {"authorization": f"Bearer {MASTER}", "content-type": "application/json"}
        assert call(proc, "POST", "/admin/teams", {"name": "red"}, headers)[0] == 201
        status, _, made = call(proc, "POST", "/admin/keys", {"name": "k1", "team": "red"}, headers)
        assert status == 201 and chat_with(proc, made["key"]) == 200

        async def main() -> None:
            client = AdminClient(proc.url, MASTER)
            client.connect()
            app = GatewayApp(client)
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.press("4")
                await until(pilot, lambda: app.spend_loaded >= 1, "the spend view")
                keys = app.query_one("#top-keys", DataTable)
                assert keys.row_count == 1 and str(keys.get_row_at(0)[1]) == "1"
                assert app.query_one("#top-teams", DataTable).row_count == 1
                await pilot.press("q")

        asyncio.run(main())
    finally:
        assert proc.stop() == 0


def test_spend_rows_keep_the_top_ones() -> None:
    rows = [{"group": f"k{i}", "requests": i, "cost_usd": 1.0 / (i + 1)} for i in range(12)]
    assert spend_rows(rows, top=2) == [("k0", "0", "1.0000"), ("k1", "1", "0.5000")]
