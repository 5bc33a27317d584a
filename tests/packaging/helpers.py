"""Shared helpers for the packaging tests: the repository, tools, clean environments, a server."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
READY = re.compile(r"listening on (http://\S+)")


def project_version() -> str:
    with open(REPO / "pyproject.toml", "rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def require_tool(name: str) -> str:
    """The tool's path, or skip the test: optional tools never fail the suite."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without twin switches or proxies (tests talk to loopback)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MODELMUX_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(extra)
    return env


EXAMPLE_MASTER_KEY = "example-master-key-for-tests"
"""``MODELMUX_MASTER_KEY`` for servers run on the shipped example config (it turns keys on)."""


def run(cmd: list[str], timeout: float = 300, check: bool = True, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; on failure show what it printed."""
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc  # type: ignore[no-any-return]


def get_json(url: str, path: str, headers: dict[str, str] | None = None
             ) -> tuple[int, dict[str, object]]:
    """GET ``path`` from a loopback ``http://host:port`` URL without any proxy."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


class Served:
    """A running ``modelmux serve`` process started by :func:`serving`."""

    def __init__(self, proc: subprocess.Popen[str], lines: list[str]) -> None:
        self.proc = proc
        self.lines = lines
        self.url = ""

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout)


@contextmanager
def serving(cmd: list[str], env: dict[str, str], timeout: float = 30) -> Iterator[Served]:
    """Start ``cmd`` (a ``modelmux serve`` invocation) and yield once it logs its address."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    served = Served(proc, [])
    ready = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            served.lines.append(line.rstrip("\n"))
            match = READY.search(line)
            if match and not served.url:
                served.url = match.group(1)
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(timeout) or not served.url:
            raise AssertionError(f"{cmd} did not become ready:\n" + "\n".join(served.lines))
        yield served
    finally:
        served.stop()
        reader.join(10)
        assert proc.stderr is not None
        proc.stderr.close()
