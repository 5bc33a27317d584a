"""``modelmux serve`` at the default level: a client's model name cannot forge a log line, in the
text or the JSON format."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest

from tests.e2e.proc import serve_config

FORGED = "2026-01-01 00:00:00,000 INFO modelmux.access[1]: FORGED"
MODEL = f"evil\n{FORGED}\r\n{FORGED}\u2028{FORGED}\x85{FORGED}\x1b[31m"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_model_name_cannot_forge_a_line(tmp_path: Path, fmt: str) -> None:
    proc = serve_config(tmp_path, f'[logging]\nformat = "{fmt}"\n[[provider]]\nname = "demo"\n'
                                  'type = "mock"\nmodels = ["mock"]\n')
    try:
        conn = http.client.HTTPConnection(proc.host, proc.port, timeout=10)
        body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"content-type": "application/json"})
        response = conn.getresponse()
        assert response.status == 404 and b"model_not_found" in response.read()
        conn.close()
        assert proc.wait_for_log("modelmux.access")
    finally:
        assert proc.stop() == 0
    lines = "\n".join(proc.lines).splitlines()  # every separator Python knows
    assert sum("model_not_found" in line for line in lines) == 1
    for line in lines:
        assert "FORGED" not in line or "evil" in line, line
        assert "\x1b" not in line
        if fmt == "json":
            assert isinstance(json.loads(line), dict), line
