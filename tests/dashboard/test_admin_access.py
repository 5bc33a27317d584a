"""The admin API and dashboard sign-in against a real serve: roles, sessions, CSRF, origin,
persisted overrides."""

from __future__ import annotations

import json

from tests.dashboard.conftest import (
    ADMIN_KEY,
    VIEWER_KEY,
    bearer,
    breaker_of,
    call,
    chat,
    home_of,
)
from tests.e2e.proc import ServeProcess


def sign_in(proc: ServeProcess, key: str) -> tuple[str, str]:
    """(cookie header value, CSRF token) of a fresh session."""
    origin = f"http://{proc.host}:{proc.port}"
    status, headers, body = call(proc, "POST", "/dashboard/session", {"key": key},
                                 {"origin": origin, "host": f"{proc.host}:{proc.port}"})
    assert status == 200, body
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    return cookie.split(";", 1)[0], body["csrf"]


def control_headers(proc: ServeProcess, cookie: str, csrf: str | None,
                    origin: str | None = None) -> dict[str, str]:
    headers = {"cookie": cookie, "content-type": "application/json",
               "host": f"{proc.host}:{proc.port}",
               "origin": origin or f"http://{proc.host}:{proc.port}"}
    if csrf is not None:
        headers["x-csrf-token"] = csrf
    return headers


def test_a_wrong_key_cannot_sign_in_and_the_page_carries_a_strict_csp(gateway: ServeProcess) -> None:
    origin = f"http://{gateway.host}:{gateway.port}"
    status, _, body = call(gateway, "POST", "/dashboard/session", {"key": "nope"},
                           {"origin": origin, "host": f"{gateway.host}:{gateway.port}"})
    assert status == 403 and body["error"]["code"] == "invalid_admin_key"
    status, headers, _ = call(gateway, "GET", "/dashboard")
    csp = headers["content-security-policy"]
    assert status == 200 and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert call(gateway, "GET", "/dashboard/")[0] == 200
    assert call(gateway, "GET", "/dashboard/../config.toml")[0] == 404
    assert call(gateway, "GET", "/dashboard/nothing.js")[0] == 404
    assert call(gateway, "GET", "/dashboard/uPlot.LICENSE")[0] == 200


def test_a_session_post_needs_its_csrf_token_and_the_gateways_origin(gateway: ServeProcess) -> None:
    cookie, csrf = sign_in(gateway, ADMIN_KEY)
    change = {"deployment": "a/mock", "state": "closed"}
    status, _, body = call(gateway, "POST", "/admin/breaker", change,
                           control_headers(gateway, cookie, None))
    assert status == 403 and body["error"]["code"] == "csrf_failed"
    status, _, body = call(gateway, "POST", "/admin/breaker", change,
                           control_headers(gateway, cookie, csrf, "http://evil.example"))
    assert status == 403 and body["error"]["code"] == "origin_mismatch"
    other_cookie, _ = sign_in(gateway, ADMIN_KEY)
    status, _, body = call(gateway, "POST", "/admin/breaker", change,
                           control_headers(gateway, other_cookie, csrf))
    assert status == 403  # a token is bound to its own session
    status, _, body = call(gateway, "POST", "/admin/breaker", change,
                           control_headers(gateway, cookie, csrf))
    assert status == 200 and body["breaker"]["state"] == "closed"


def test_a_viewer_reads_but_cannot_change(gateway: ServeProcess) -> None:
    status, _, _ = call(gateway, "GET", "/admin/providers", headers=bearer(VIEWER_KEY))
    assert status == 200
    status, _, body = call(gateway, "POST", "/admin/breaker",
                           {"deployment": "a/mock", "state": "open"}, bearer(VIEWER_KEY))
    assert status == 403 and body["error"]["code"] == "insufficient_role"
    cookie, csrf = sign_in(gateway, VIEWER_KEY)
    status, _, body = call(gateway, "POST", "/admin/breaker",
                           {"deployment": "a/mock", "state": "open"},
                           control_headers(gateway, cookie, csrf))
    assert status == 403 and body["error"]["code"] == "insufficient_role"
    status, _, body = call(gateway, "GET", "/admin/config", headers={"cookie": cookie})
    assert status == 200 and body["config"]["admin"]["key"] == "<redacted>"
    assert ADMIN_KEY not in json.dumps(body) and VIEWER_KEY not in json.dumps(body)


def test_bad_controls_get_clear_openai_errors(gateway: ServeProcess) -> None:
    for change, code in (({"deployment": "nope/x", "state": "open"}, "unknown_deployment"),
                         ({"deployment": "a/mock", "state": "ajar"}, "invalid_request"),
                         ({"deployment": "a/mock"}, "invalid_request")):
        status, _, body = call(gateway, "POST", "/admin/breaker", change, bearer())
        assert status in (400, 404) and body["error"]["code"] == code
    status, _, body = call(gateway, "POST", "/admin/limits", b"{", bearer())
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    status, _, body = call(gateway, "POST", "/admin/limits",
                           {"deployment": "a/mock", "rpm": -1}, bearer())
    assert status == 400 and body["error"]["param"] == "rpm"
    assert chat(gateway)[0] == 200  # still serving


def test_an_opened_breaker_is_skipped_and_survives_a_reload(gateway: ServeProcess) -> None:
    status, _, _ = call(gateway, "POST", "/admin/breaker",
                        {"deployment": "a/mock", "state": "open"}, bearer())
    assert status == 200
    try:
        assert {chat(gateway) for _ in range(4)} == {(200, "b")}
        status, _, body = call(gateway, "POST", "/admin/limits",
                               {"deployment": "b/mock", "rpm": 600}, bearer())
        assert status == 200 and body["reloaded"] is True
        assert breaker_of(gateway, "a/mock")["state"] == "open"
        status, _, body = call(gateway, "GET", "/admin/providers", headers=bearer())
        found = {d["id"]: d for p in body["data"] for d in p["deployments"]}
        assert found["b/mock"]["limits"]["rpm"] == 600
        assert found["b/mock"]["overrides"] == {"rpm": 600}
        assert found["b/mock"]["configured"]["rpm"] is None
        saved = json.loads((home_of(gateway) / ".local/state/modelmux/overrides.json").read_text())
        assert saved["deployments"]["a/mock"]["breaker"] == "open"
        status, _, body = call(gateway, "GET", "/admin/config", headers=bearer())
        assert body["last_reload"]["ok"] is True
    finally:
        call(gateway, "POST", "/admin/breaker", {"deployment": "a/mock", "state": "closed"},
             bearer())
        call(gateway, "POST", "/admin/limits", {"deployment": "b/mock", "rpm": None}, bearer())
    assert breaker_of(gateway, "a/mock")["state"] == "closed"


def test_the_event_stream_needs_a_credential(gateway: ServeProcess) -> None:
    assert call(gateway, "GET", "/admin/events")[0] == 401
    assert call(gateway, "GET", "/admin/events", headers=bearer("wrong"))[0] == 403
