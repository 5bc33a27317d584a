"""A keyless gateway on loopback is open to its own host; overrides outlive a restart."""

from __future__ import annotations

from pathlib import Path

from tests.dashboard.conftest import call, chat
from tests.e2e.proc import serve_config

TWO_MOCKS = """
[[provider]]
name = "a"
type = "mock"
models = ["mock"]

[[provider]]
name = "b"
type = "mock"
models = ["mock"]
"""


def test_open_mode_sessions_and_overrides_that_survive_a_restart(tmp_path: Path) -> None:
    proc = serve_config(tmp_path, TWO_MOCKS)
    try:
        assert call(proc, "GET", "/admin/providers")[0] == 401  # open to sessions only
        status, headers, session = call(proc, "GET", "/dashboard/session")
        assert status == 200 and session["role"] == "admin" and session["open"] is True
        cookie = headers["set-cookie"].split(";", 1)[0]
        host = f"{proc.host}:{proc.port}"
        control = {"cookie": cookie, "x-csrf-token": session["csrf"], "host": host,
                   "origin": f"http://{host}", "content-type": "application/json"}
        status, _, body = call(proc, "POST", "/admin/limits",
                               {"deployment": "b/mock", "rpm": 1000}, control)
        assert status == 200 and body["reloaded"] is True, body
        status, _, body = call(proc, "POST", "/admin/breaker",
                               {"deployment": "a/mock", "state": "open"}, control)
        assert status == 200
    finally:
        assert proc.stop() == 0
    again = serve_config(tmp_path, TWO_MOCKS)
    try:
        status, headers, session = call(again, "GET", "/dashboard/session")
        cookie = headers["set-cookie"].split(";", 1)[0]
        status, _, body = call(again, "GET", "/admin/providers", headers={"cookie": cookie})
        found = {d["id"]: d for p in body["data"] for d in p["deployments"]}
        assert found["b/mock"]["limits"]["rpm"] == 1000
        assert found["a/mock"]["breaker"]["state"] == "open" and found["a/mock"]["breaker"]["pinned"]
        assert {chat(again) for _ in range(3)} == {(200, "b")}
    finally:
        assert again.stop() == 0
