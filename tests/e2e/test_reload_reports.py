"""What a reload reports: settings it could not apply, and a process uptime it keeps."""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path
from typing import Any

from tests.e2e.proc import ServeProcess
from tests.e2e.test_reload import mock, reload


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def health(proc: ServeProcess) -> dict[str, Any]:
    conn = http.client.HTTPConnection(proc.host, proc.port, timeout=10)
    try:
        conn.request("GET", "/health")
        return dict(json.loads(conn.getresponse().read()))
    finally:
        conn.close()


def server(port: int, workers: int = 1) -> str:
    return f'[server]\nhost = "127.0.0.1"\nport = {port}\nworkers = {workers}\n'


def test_reload_names_the_settings_that_need_a_restart(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    control = tmp_path / "control.sock"
    config.write_text(server(0) + mock(["a"]))
    proc = ServeProcess(["serve", "--config", str(config), "--control-socket", str(control)],
                        home=tmp_path)
    try:
        moved = free_port()
        config.write_text(server(moved) + mock(["b"]))
        done = reload(control)
        assert done.returncode == 0, done.stderr
        assert f"needs a restart: server.port (0 -> {moved})" in done.stdout
        assert "provider[0].models" in done.stdout
        again = reload(control)  # still listening on the old port: still said
        assert again.returncode == 0, again.stderr
        assert f"needs a restart: server.port (0 -> {moved})" in again.stdout
        config.write_text(server(0) + mock(["b"]))
        back = reload(control)
        assert back.returncode == 0 and "restart" not in back.stdout, back.stdout
        config.write_text(server(0, workers=2) + mock(["b"]))
        workers = reload(control)
        assert "needs a restart or `modelmux upgrade`: server.workers (1 -> 2)" in workers.stdout
    finally:
        assert proc.stop() == 0


def test_supervisor_reload_names_the_settings_that_need_a_restart(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    control = tmp_path / "control.sock"
    config.write_text(server(0, workers=2) + mock(["a"]))
    proc = ServeProcess(["serve", "--config", str(config), "--control-socket", str(control)],
                        home=tmp_path)
    try:
        moved = free_port()
        config.write_text(server(moved, workers=2) + mock(["b"]))
        done = reload(control)
        assert done.returncode == 0, done.stderr
        assert f"needs a restart: server.port (0 -> {moved})" in done.stdout
    finally:
        assert proc.stop() == 0


def test_uptime_counts_from_the_process_start_across_a_reload(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    control = tmp_path / "control.sock"
    config.write_text(server(0) + mock(["a"]))
    proc = ServeProcess(["serve", "--config", str(config), "--control-socket", str(control)],
                        home=tmp_path)
    try:
        before = time.time()  # every App a reload builds is built after this
        config.write_text(server(0) + mock(["b"]))
        assert reload(control).returncode == 0
        asked = time.time()  # the server measures uptime after this
        answer = health(proc)
        assert asked - answer["uptime_seconds"] < before, answer
    finally:
        assert proc.stop() == 0
