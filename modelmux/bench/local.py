"""Local servers for ``modelmux bench --self``: ``modelmux serve`` subprocesses and their configs.

The direct target is ModelMux's own ``mock`` provider; the proxy is a second ``modelmux serve``
whose ``openai_compatible`` provider points at it. This module starts, pins, probes and stops
them; it does not generate load.
"""

from __future__ import annotations

import collections
import http.client
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from modelmux.bench.wire import Target, parse_url

READY = re.compile(r"listening on (http://\S+)")
MOCK_WORD = "lorem ipsum "


class StartError(Exception):
    """A local server could not be started or does not answer; the message says why."""


def mock_config(model: str, chunks: int) -> str:
    """A ``modelmux serve`` config whose mock provider answers ``model`` in ``chunks`` pieces."""
    return (
        '[server]\nhost = "127.0.0.1"\nport = 0\n\n[logging]\nlevel = "info"\n\n'
        f'[[provider]]\nname = "bench-mock"\ntype = "mock"\nmodels = [{_toml(model)}]\n'
        f"text = {_toml(MOCK_WORD)}\nrepeat = {max(chunks, 1)}\nchunks = {max(chunks, 1)}\n"
        "usage = true\n"
    )


def proxy_config(model: str, upstream: str) -> str:
    """A config whose ``openai_compatible`` provider relays ``model`` to ``upstream`` (…/v1)."""
    return (
        '[server]\nhost = "127.0.0.1"\nport = 0\n\n[logging]\nlevel = "info"\n\n'
        f'[[provider]]\nname = "bench-upstream"\ntype = "openai_compatible"\n'
        f"models = [{_toml(model)}]\nbase_url = {_toml(upstream)}\n"
    )


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_problem(text: str) -> str | None:
    """Why this process's config schema rejects ``text``, or None when it accepts it."""
    import msgspec

    try:
        from modelmux.config.schema import decode
    except ImportError:  # a schema without ``decode``: starting the server will tell
        return None
    try:
        decode(text.encode())
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return str(exc)
    return None


def parse_cpus(spec: str) -> set[int]:
    """``"0"``, ``"0,2"`` or ``"0-3"`` as a set of CPU numbers.

    Raises:
        ValueError: not such a list.
    """
    cpus: set[int] = set()
    for part in spec.split(","):
        low, _, high = part.strip().partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    if not cpus:
        raise ValueError(f"empty CPU list {spec!r}")
    return cpus


class ServeProcess:
    """One ``modelmux serve`` subprocess on a free loopback port, optionally pinned to CPUs."""

    def __init__(self, name: str, config: str, workdir: Path, cpus: set[int] | None = None,
                 start_timeout: float = 30.0) -> None:
        """Raises: StartError: it exited or did not log ``listening on`` in time."""
        self.name = name
        path = workdir / f"{name}.toml"
        path.write_text(config)
        self.lines: collections.deque[str] = collections.deque(maxlen=40)
        self.url = ""
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelmux", "serve", "--config", str(path),
             "--host", "127.0.0.1", "--port", "0"],  # flags beat MODELMUX_SERVER_* variables
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, errors="replace",
        )
        if cpus:
            try:
                os.sched_setaffinity(self.proc.pid, cpus)
            except (AttributeError, OSError) as exc:
                self.stop()
                raise StartError(f"{name}: cannot pin to CPUs {sorted(cpus)}: {exc}") from None
        self._reader = threading.Thread(target=self._read, name=f"bench-{name}", daemon=True)
        self._reader.start()
        if not self._ready.wait(start_timeout) or not self.url:
            self.stop()
            tail = "\n".join(f"  {line}" for line in list(self.lines)[-8:])
            raise StartError(f"{name}: modelmux serve did not start:\n{tail}")

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if not self.url and (match := READY.search(line)):
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def target(self) -> Target:
        return parse_url(self.url)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait (SIGKILL after ``timeout``); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(timeout)
        self._reader.join(timeout)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code


def probe(target: Target, request_body: bytes, stream: bool, headers: list[tuple[str, str]],
          timeout: float = 10.0) -> str | None:
    """Send one request the way the run will; None when it succeeds, else what went wrong."""
    cls = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
    conn = cls(target.host, target.port, timeout=timeout)
    try:
        conn.request("POST", target.path, body=request_body,
                     headers={"content-type": "application/json", **dict(headers)})
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    if response.status != 200:
        return f"HTTP {response.status}: {body[:300].decode('utf-8', 'replace')}"
    if stream and b"[DONE]" not in body:
        return "stream ended without data: [DONE]: " + body[-300:].decode("utf-8", "replace")
    return None
