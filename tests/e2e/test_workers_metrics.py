"""``GET /metrics`` under ``serve --workers 2`` answers with both workers' totals, whichever
worker takes the scrape, and keeps a killed worker's counts after its restart."""

from __future__ import annotations

import http.client
import json
import os
import signal
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.proc import ServeProcess
from tests.e2e.test_workers import health_pid

MAX_TRIES = 400


def _scrape(proc: ServeProcess) -> dict[tuple[str, str], float]:
    """(sample name, route) → value, parsed by prometheus_client."""
    conn = http.client.HTTPConnection(proc.host, proc.port, timeout=10)
    try:
        conn.request("GET", "/metrics", headers={"connection": "close"})
        response = conn.getresponse()
        assert response.status == 200
        text = response.read().decode()
    finally:
        conn.close()
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, sample.labels.get("route", ""))
            out[key] = out.get(key, 0) + sample.value
    return out


def _chat(proc: ServeProcess) -> None:
    body = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "hi"}]})
    conn = http.client.HTTPConnection(proc.host, proc.port, timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"content-type": "application/json", "connection": "close"})
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def _until(proc: ServeProcess, health: int, chats: int) -> dict[tuple[str, str], float]:
    """Scrape until the /health and chat totals reach these (workers publish within 0.5 s)."""
    samples: dict[tuple[str, str], float] = {}
    for _ in range(MAX_TRIES):
        samples = _scrape(proc)
        if samples.get(("modelmux_requests_total", "/health"), 0) >= health and \
                samples.get(("modelmux_requests_total", "/v1/chat/completions"), 0) >= chats:
            return samples
    raise AssertionError(f"totals never reached {health} and {chats}: {samples}")


def test_scrape_sums_every_worker(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[server]\nhost = "127.0.0.1"\nport = 0\nworkers = 2\n'
                      '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["mock"]\n')
    proc = ServeProcess(["serve", "--config", str(config)], home=tmp_path,
                        env={"XDG_RUNTIME_DIR": str(tmp_path)})  # the snapshots go there
    try:
        assert proc.wait_for_log("2 workers ready")
        assert len(list(tmp_path.glob("modelmux-metrics-*"))) == 1
        seen: list[int] = []
        while len(set(seen)) < 2 and len(seen) < MAX_TRIES:
            seen.append(health_pid(proc))
        workers = set(seen)
        assert len(workers) == 2  # so neither worker alone served every /health
        for _ in range(5):
            _chat(proc)
        samples = _until(proc, len(seen), 5)
        assert samples[("modelmux_requests_total", "/health")] == len(seen)
        assert samples[("modelmux_requests_total", "/v1/chat/completions")] == 5
        assert samples[("modelmux_build_info", "")] == 1  # one version, not one per worker
        assert samples[("gen_ai_server_request_duration_seconds_count", "")] == 5
        for _ in range(10):  # whichever worker answers, the totals are the same
            again = _scrape(proc)
            assert again[("modelmux_requests_total", "/health")] == len(seen)

        os.kill(min(workers), signal.SIGKILL)
        assert proc.wait_for_log("restarted (pid", timeout=30)
        after = _until(proc, len(seen), 5)
        assert after[("modelmux_requests_total", "/health")] == len(seen)  # kept, not lost
        assert after[("modelmux_requests_total", "/v1/chat/completions")] == 5
    finally:
        assert proc.stop() == 0
    assert not list(tmp_path.glob("modelmux-metrics-*"))  # removed by the supervisor
