"""``modelmux serve`` buffers its access lines; a graceful stop right after a burst of requests
still writes one whole line per request, in the text and the JSON format, with workers too."""

from __future__ import annotations

import http.client
import json
import re
import threading
from pathlib import Path

import pytest

from tests.e2e.proc import serve_config

REQUESTS = 300
CLIENTS = 4
BODY = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "hi"}]})
REQUEST_ID = re.compile(r"request_id=(load-\d+) ")


def send(host: str, port: int, ids: list[str], statuses: list[int]) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        for request_id in ids:
            conn.request("POST", "/v1/chat/completions", BODY,
                         {"content-type": "application/json", "x-request-id": request_id})
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
    finally:
        conn.close()


@pytest.mark.parametrize(("fmt", "workers"), [("text", 1), ("json", 1), ("text", 2)])
def test_sigterm_after_a_burst_loses_no_access_line(tmp_path: Path, fmt: str, workers: int) -> None:
    proc = serve_config(tmp_path, f'workers = {workers}\n[logging]\nformat = "{fmt}"\n'
                                  '[[provider]]\nname = "demo"\ntype = "mock"\nmodels = ["mock"]\n')
    ids = [f"load-{i}" for i in range(REQUESTS)]
    statuses: list[int] = []
    try:
        clients = [threading.Thread(target=send, args=(proc.host, proc.port, ids[i::CLIENTS], statuses))
                   for i in range(CLIENTS)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(60)
    finally:
        assert proc.stop() == 0
    assert statuses == [200] * REQUESTS
    access = [line for line in proc.lines if "modelmux.access" in line]
    if fmt == "json":
        entries = [json.loads(line) for line in access]
        logged = [e["request_id"] for e in entries if e["request_id"].startswith("load-")]
        assert all(e["status"] == 200 and e["model"] == "mock" for e in entries)
    else:
        logged = [m.group(1) for m in map(REQUEST_ID.search, access) if m]
        assert all(line.endswith(" completed=true trace_id=-") for line in access)
    assert sorted(logged) == sorted(ids)
