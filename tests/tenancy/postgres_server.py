"""A real PostgreSQL server for the tests: Debian's ``initdb`` into a temporary folder, then
``postgres`` on a free loopback port with its unix socket in that folder; stopped at the end.

Binaries come from ``/usr/lib/postgresql/*/bin`` (Debian keeps them off PATH). PostgreSQL
refuses to run as root, so under root (CI) both run as ``nobody``, owning the folder. Missing
binaries fail the tests, since CI must run this leg, unless ``MODELMUX_ALLOW_NO_POSTGRES=1``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

READY_TIMEOUT = 30.0
ALLOW_MISSING = "MODELMUX_ALLOW_NO_POSTGRES"


def find_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has ``initdb`` and ``postgres``."""
    found = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bin_dir = Path(initdb).parent
        version = bin_dir.parent.name
        if (bin_dir / "postgres").exists() and version.isdigit():
            found.append((int(version), bin_dir))
    return max(found)[1] if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One ``postgres`` process; ``database()`` makes a fresh, empty database and its DSN."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.base = Path(tempfile.mkdtemp(prefix="modelmux-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._count = 0
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.base, nobody.pw_uid, nobody.pw_gid)
            self._as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}

    def _run(self, *argv: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(argv, cwd=self.base, capture_output=True, timeout=60, check=False,
                              **self._as)

    def start(self) -> None:
        init = self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres",
                         "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync")
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr.decode(errors='replace')}")
        log = open(self.base / "postgres.log", "wb")  # noqa: SIM115 - the server keeps it
        with log:
            self.proc = subprocess.Popen(
                [str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-k", str(self.base), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "max_connections=100", "-c", "shared_buffers=16MB"],
                cwd=self.base, stdout=log, stderr=subprocess.STDOUT, **self._as)
        deadline = time.monotonic() + READY_TIMEOUT
        while self._run(str(self.bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p",
                        str(self.port), "-t", "1").returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("postgres did not start: "
                                   + (self.base / "postgres.log").read_text(errors="replace"))
            time.sleep(0.05)

    def database(self) -> str:
        """A new empty database; its DSN (user ``postgres``, trust auth, loopback)."""
        self._count += 1
        name = f"t{self._count}"
        made = self._run(str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                         "-U", "postgres", "-d", "postgres", "-q", "-c", f"CREATE DATABASE {name}")
        if made.returncode != 0:
            raise RuntimeError(f"CREATE DATABASE failed: {made.stderr.decode(errors='replace')}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)  # "fast" shutdown: disconnect clients, exit
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL for the session; fails (not skips) where it is missing, unless allowed."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = ("PostgreSQL is not installed (apt-get install postgresql: /usr/lib/postgresql/"
                   f"*/bin/initdb); set {ALLOW_MISSING}=1 to skip these tests instead")
        if os.environ.get(ALLOW_MISSING) == "1":
            pytest.skip(message)
        pytest.fail(message)
    server = PostgresServer(bin_dir)
    server.start()
    yield server
    server.stop()
