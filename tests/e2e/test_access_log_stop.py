"""``modelmux serve`` buffers its access lines; a graceful stop in the middle of a burst of
requests still writes one whole line per answered request, in the text and the JSON format,
with workers too.

Every ordinary line below WARNING but the readiness line is kept out of the log (a
``sitecustomize`` on the server's path), because an ordinary line flushes the access buffer:
without it the "shutting down" and "stopped" lines would carry the last access lines out, and
the stop's own writes (the handler's flush and ``LineLog.close`` at ``logging.shutdown``, the
flush at exit) would go untested: with all three disabled this test fails.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.proc import LOOPBACK_SERVER, ServeProcess

BEFORE_STOP = 200
"""Answers to wait for before SIGTERM; the clients keep sending through the stop."""
MOST = 2000
CLIENTS = 4
BODY = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "hi"}]})
REQUEST_ID = re.compile(r"request_id=(load-\d+-\d+) ")
QUIET = '''\
import logging

from modelmux.observability import linelog

_emit = linelog.LineHandler.emit


def _emit_loud(self, record):
    if (record.levelno >= logging.WARNING or record.name == "modelmux.access"
            or "listening on" in record.getMessage()):
        _emit(self, record)


linelog.LineHandler.emit = _emit_loud
'''


class Load:
    """``CLIENTS`` keep-alive clients sending until the server stops answering."""

    def __init__(self, proc: ServeProcess) -> None:
        self.proc = proc
        self.answered: list[str] = []
        self.sent: list[str] = []
        self.refused: list[int] = []
        self.enough = threading.Event()
        self.clients = [threading.Thread(target=self.send, args=(n,)) for n in range(CLIENTS)]

    def send(self, client: int) -> None:
        conn = http.client.HTTPConnection(self.proc.host, self.proc.port, timeout=10)
        try:
            for n in range(MOST // CLIENTS):
                request_id = f"load-{client}-{n}"
                self.sent.append(request_id)
                conn.request("POST", "/v1/chat/completions", BODY,
                             {"content-type": "application/json", "x-request-id": request_id})
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    self.refused.append(response.status)
                    return
                self.answered.append(request_id)
                if len(self.answered) >= BEFORE_STOP:
                    self.enough.set()
        except (OSError, http.client.HTTPException):
            return  # the server stopped
        finally:
            conn.close()
            self.enough.set()


@pytest.mark.parametrize(("fmt", "workers"), [("text", 1), ("json", 1), ("text", 2),
                                              ("json", 2)])
def test_sigterm_during_a_burst_loses_no_access_line(tmp_path: Path, fmt: str,
                                                     workers: int) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(QUIET)
    config = tmp_path / "config.toml"
    config.write_text(LOOPBACK_SERVER + f'workers = {workers}\n[logging]\nformat = "{fmt}"\n'
                      '[[provider]]\nname = "demo"\ntype = "mock"\nmodels = ["mock"]\n')
    proc = ServeProcess(["serve", "--config", str(config)], env={"PYTHONPATH": str(site)},
                        home=tmp_path)
    load = Load(proc)
    try:
        for client in load.clients:
            client.start()
        assert load.enough.wait(60)
    finally:
        assert proc.stop() == 0
        deadline = time.monotonic() + 30
        for client in load.clients:
            client.join(max(deadline - time.monotonic(), 0))
    assert len(load.answered) >= BEFORE_STOP
    assert all(status == 503 for status in load.refused), load.refused
    assert not any("shutting down" in line or "stopped" in line for line in proc.lines)
    access = [line for line in proc.lines if "modelmux.access" in line]
    if fmt == "json":
        entries = [json.loads(line) for line in access]
        logged = [e["request_id"] for e in entries if e["request_id"].startswith("load-")]
        assert all(e["status"] in (200, 503) and e["model"] == "mock" for e in entries)
    else:
        logged = [m.group(1) for m in map(REQUEST_ID.search, access) if m]
        assert all(line.endswith(" trace_id=-") for line in access)
    assert len(logged) == len(set(logged))
    assert set(load.answered) <= set(logged) <= set(load.sent)
