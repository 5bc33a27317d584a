"""``modelmux serve --workers N``: shared socket, crash restart, graceful stop of all workers."""

from __future__ import annotations

import http.client
import json
import os
import signal
from pathlib import Path

import openai

from tests.e2e.proc import ServeProcess


def health_pid(proc: ServeProcess) -> int:
    conn = http.client.HTTPConnection(proc.host, proc.port, timeout=10)
    try:
        conn.request("GET", "/health", headers={"connection": "close"})
        response = conn.getresponse()
        assert response.status == 200
        return int(json.loads(response.read())["pid"])
    finally:
        conn.close()


def pids_seen(proc: ServeProcess, want: int, attempts: int = 400) -> set[int]:
    seen: set[int] = set()
    for _ in range(attempts):
        seen.add(health_pid(proc))
        if len(seen) >= want:
            break
    return seen


def test_workers_share_the_socket_restart_on_crash_and_stop_together(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[server]\nport = 0\nworkers = 2\n'
                      '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["mock"]\n')
    proc = ServeProcess(["serve", "--config", str(config)], home=tmp_path)
    workers: set[int] = set()
    after: set[int] = set()
    try:
        assert proc.wait_for_log("2 workers ready")
        workers = pids_seen(proc, 2)
        assert len(workers) == 2 and proc.proc.pid not in workers

        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        assert proc.wait_for_log("restarted (pid", timeout=30)
        with openai.OpenAI(base_url=proc.url + "/v1", api_key="x", max_retries=0, timeout=10) as sdk:
            for _ in range(5):
                reply = sdk.chat.completions.create(model="mock", messages=[{"role": "user", "content": "hi"}])
                assert reply.choices[0].message.content
        after = pids_seen(proc, 2)
        assert victim not in after and len(after) == 2
    finally:
        assert proc.stop() == 0
    for pid in workers | after:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"worker {pid} outlived its supervisor")
