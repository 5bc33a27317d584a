"""``modelmux bench`` as a process: ``--url`` against ``modelmux serve``, ``--self``, exit codes."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelmux.cli.bench import parse_warmup
from tests.e2e.proc import ServeProcess, modelmux_command, serve_config

CONFIG = """
[[provider]]
name = "demo"
type = "mock"
models = ["mock"]
chunks = 8
"""

RESULT_KEYS = {"url", "elapsed_s", "responses", "ok", "errors", "req_per_s", "ok_per_s",
               "streams_per_s", "chunks_per_s", "rx_bytes_per_s", "latency_ms", "ttfb_ms",
               "chunk_gap_ms", "rss"}
PERCENTILES = {"p50", "p90", "p99", "p99.9", "max", "min", "mean"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    proc = serve_config(tmp_path_factory.mktemp("home"), CONFIG)
    yield proc
    assert proc.stop() == 0


def bench(*args: str, cwd: Path) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([*modelmux_command(), "bench", *args, "--json"], cwd=cwd,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          check=False)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def check(res: dict[str, Any], stream: bool) -> None:
    assert set(res) == RESULT_KEYS
    assert res["ok"] > 0 and res["errors"] == {"total": 0}
    assert res["req_per_s"] > 0 and set(res["latency_ms"]) == PERCENTILES
    assert res["latency_ms"]["p50"] <= res["latency_ms"]["p99"] <= res["latency_ms"]["max"]
    assert (res["chunk_gap_ms"] is not None) == stream == (res["streams_per_s"] is not None)


def test_url_no_stream(server: ServeProcess, tmp_path: Path) -> None:
    began = time.perf_counter()
    code, report = bench("--url", server.url, "-c", "4", "-d", "1", "--pid",
                         str(server.proc.pid), cwd=tmp_path)
    wall = time.perf_counter() - began
    assert code == 0 and report["mode"] == "url"
    assert report["plan"]["concurrency"] == 4 and report["plan"]["stream"] is False
    res = report["runs"]["url"]
    check(res, stream=False)
    assert 1 - 0.002 <= res["elapsed_s"] < wall  # the duration, within the process's life
    assert res["rss"]["peak_bytes"] > 0 and res["rss"]["hwm_bytes"] >= res["rss"]["peak_bytes"]


def test_url_stream_by_requests(server: ServeProcess, tmp_path: Path) -> None:
    code, report = bench("--url", server.url, "-c", "4", "-n", "40", "--warmup", "8",
                         "--stream", cwd=tmp_path)
    res = report["runs"]["url"]
    assert code == 0 and res["ok"] == res["responses"] == 40
    check(res, stream=True)
    assert res["chunks_per_s"] > res["streams_per_s"] > 0


def test_self(tmp_path: Path) -> None:
    code, report = bench("--self", "-c", "4", "-d", "1", "--stream", "--chunks", "5",
                         cwd=tmp_path)
    assert code == 0 and report["mode"] == "self"
    check(report["runs"]["direct"], stream=True)
    assert report["runs"]["direct"]["rss"]["peak_bytes"] > 0
    proxy = report["runs"]["proxy"]
    if proxy is None:  # a build without the openai_compatible provider measures direct only
        assert report["proxy_unavailable"] and report["overhead"] is None
    else:
        check(proxy, stream=True)
        assert report["proxy_unavailable"] is None
        assert report["overhead"]["throughput_ratio"] > 0


def test_every_request_failing_exits_1(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, report = bench("--url", f"http://127.0.0.1:{port}", "-c", "2", "-n", "4",
                         cwd=tmp_path)
    assert code == 1 and report["runs"]["url"]["errors"] == {"total": 4, "connect": 4}


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    done = subprocess.run([*modelmux_command(), "bench", "--url", "ftp://x", "-d", "1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2 and "not an http(s) URL" in done.stderr


@pytest.mark.parametrize(("text", "by_requests", "expected"), [
    ("0", False, (0.0, 0)), ("2", False, (2.0, 0)), ("2", True, (0.0, 2)),
    ("1.5s", True, (1.5, 0)), ("200r", False, (0.0, 200)), ("50req", False, (0.0, 50)),
])
def test_parse_warmup(text: str, by_requests: bool, expected: tuple[float, int]) -> None:
    assert parse_warmup(text, by_requests) == expected


@pytest.mark.parametrize(("proxy_type", "reason"), [
    ("no_such_provider", "no openai_compatible provider"),  # this build's schema lacks it
    ("openai_compatible", "did not start"),  # known, but this server refuses the config
])
def test_self_measures_direct_when_the_proxy_is_unavailable(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        proxy_type: str, reason: str) -> None:
    from modelmux.bench import local
    from modelmux.cli.bench import add_parser, run

    real = local.proxy_config

    def broken(model: str, upstream: str) -> str:
        text = real(model, "ftp://not-http")
        return text.replace('type = "openai_compatible"', f'type = "{proxy_type}"')

    monkeypatch.setattr(local, "proxy_config", broken)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    code = run(parser.parse_args(["bench", "--self", "-c", "2", "-n", "20", "--json"]))
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["runs"]["direct"]["ok"] == 20
    assert report["runs"]["proxy"] is None and report["overhead"] is None
    assert reason in report["proxy_unavailable"]
