"""Runs ``modelmux serve`` as a real process on a loopback port and waits for its readiness line."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

READY = re.compile(r"listening on (https?://[^\s\"]+)")  # text or JSON log lines
START_TIMEOUT = 30.0


_LEGACY_1X = {"PORT", "HOST", "LOG_LEVEL", "STREAMING_MODE", "GCP_SERVICE_ACCOUNT_KEY", "XDG_CONFIG_HOME"}


def _configures_modelmux(name: str) -> bool:
    """Variables that would change the server under test (1.x names, config layers)."""
    if name in _LEGACY_1X or name.startswith(("LLM_", "VERTEX_")):
        return True
    return name.startswith("MODELMUX_") and name not in (
        "MODELMUX_PURE_PYTHON", "MODELMUX_REQUIRE_NATIVE", "MODELMUX_SERVER_HTTP1")


def modelmux_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m modelmux``."""
    script = Path(sys.executable).with_name("modelmux")
    if script.exists():
        return [str(script)]
    found = shutil.which("modelmux")
    return [found] if found else [sys.executable, "-m", "modelmux"]


class ServeProcess:
    """One ``modelmux serve`` process; its stderr lines are collected for assertions."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, home: Path | None = None,
                 program: list[str] | None = None) -> None:
        full_env = {k: v for k, v in os.environ.items() if not _configures_modelmux(k)}
        if home is not None:
            full_env["HOME"] = str(home)
            full_env["XDG_CONFIG_HOME"] = str(home / ".config")
        full_env.update(env or {})
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.url = ""
        self.proc = subprocess.Popen(
            [*(program or modelmux_command()), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=full_env,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(START_TIMEOUT) or not self.url:
            self.stop()
            raise RuntimeError("modelmux serve did not become ready:\n" + "\n".join(self.lines))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            match = READY.search(line)
            if match and not self.url:
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()  # process ended: wake the waiter

    @property
    def host(self) -> str:
        return self.url.split("//", 1)[1].rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for exit; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout)
        self._reader.join(timeout)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code

    def wait_for_log(self, needle: str, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in line for line in self.lines):
                return True
            time.sleep(0.02)
        return False


LOOPBACK_SERVER = '[server]\nhost = "127.0.0.1"\nport = 0\n'
"""The ``[server]`` table of a test config: loopback, a free port (read from the ready line)."""


def priced_upstream(origin: str) -> str:
    """Config for model ``priced`` on an OpenAI-compatible upstream at ``origin`` (provider
    ``up``), priced at 1 USD per million input tokens and 8 per million output tokens."""
    return f"""
[[prices]]
model = "priced"
input_per_mtok = 1.0
output_per_mtok = 8.0

[[provider]]
name = "up"
type = "openai_compatible"
base_url = "{origin}/v1"
models = ["priced"]
"""


def serve_config(home: Path, config: str, name: str = "config.toml") -> ServeProcess:
    """``modelmux serve`` on ``LOOPBACK_SERVER`` + ``config``, written to ``home/name``, with
    ``home`` as its HOME."""
    path = home / name
    path.write_text(LOOPBACK_SERVER + config)
    return ServeProcess(["serve", "--config", str(path)], home=home)
