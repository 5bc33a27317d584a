"""``modelmux upgrade``: a steady load across the hand-over loses nothing; a failed successor
leaves the old process serving.

The test process makes itself a child subreaper (as systemd is), so the successor, orphaned
when the old server exits, becomes its child and can be stopped and reaped like a service.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.loadgen import Load
from tests.e2e.proc import ServeProcess, modelmux_command

PR_SET_CHILD_SUBREAPER = 36
TEXT = "tick "
REPEAT = 12


@pytest.fixture
def subreaper() -> Iterator[None]:
    if not sys.platform.startswith("linux"):
        pytest.skip("child subreapers are a Linux feature")
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def config_text(workers: int = 1, **server: object) -> str:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in server.items())
    return (f"[server]\nport = 0\nworkers = {workers}\ndrain_timeout = 20\n{extra}"
            f'[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["mock"]\ntext = "{TEXT}"\n'
            f"repeat = {REPEAT}\nchunks = 6\nchunk_delay_ms = 25\n")


def upgrade(control: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*modelmux_command(), "upgrade", "--control-socket", str(control), *extra],
                          check=False, capture_output=True, text=True, timeout=120)


def health_pid(proc: ServeProcess) -> int:
    conn = http.client.HTTPConnection(proc.host, proc.port, timeout=10)
    try:
        conn.request("GET", "/health", headers={"connection": "close"})
        return int(json.loads(conn.getresponse().read())["pid"])
    finally:
        conn.close()


def read_pid(path: Path) -> int:
    return int(path.read_text().strip())


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def stop_orphan(pid: int, timeout: float = 30.0) -> int:
    """SIGTERM a successor that was handed to us as subreaper, and reap it; its exit code."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"pid {pid} did not stop in time")


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def notify_socket(path: Path) -> socket.socket:
    """A stand-in for systemd's notification socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


def notifications(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


@pytest.mark.parametrize("workers", [1, 2], ids=["single", "workers"])
def test_upgrade_under_load_loses_no_request(tmp_path: Path, subreaper: None, workers: int) -> None:
    config, control, pid_file = tmp_path / "config.toml", tmp_path / "control.sock", tmp_path / "mm.pid"
    config.write_text(config_text(workers))
    sd = notify_socket(tmp_path / "notify.sock")
    proc = ServeProcess(["serve", "--config", str(config), "--control-socket", str(control),
                         "--pid-file", str(pid_file)], home=tmp_path,
                        env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    successor = 0
    load = Load(proc.host, proc.port, proc.url, TEXT * REPEAT)
    try:
        wait_until(lambda: pid_file.exists() and notifications(sd) == ["READY=1"], 10, "READY=1")
        old_pid = read_pid(pid_file)
        assert old_pid == proc.proc.pid
        load.start()
        wait_until(lambda: min(load.counts()) >= 3, 30, "every client loop to get going")

        done = upgrade(control)
        assert done.returncode == 0, done.stderr
        successor = read_pid(pid_file)
        assert successor != old_pid and f"pid {successor} serves now" in done.stdout
        assert notifications(sd) == [f"MAINPID={successor}"]
        assert proc.proc.wait(30) == 0  # the old process drained and exited cleanly
        assert proc.wait_for_log("handed over")
        assert proc.wait_for_log("connection(s) for up to")  # it had connections to drain
        after_exit = load.counts()
        wait_until(lambda: all(n >= min(a + 3, load.limit)
                               for n, a in zip(load.counts(), after_exit, strict=True)),
                   30, f"every client loop to be served by the new process ({load.tallies})")
        load.finish()
        serving = health_pid(proc)
        assert (serving if workers == 1 else parent_of(serving)) == successor
        assert control.is_socket()
    finally:
        load.finish()
        sd.close()
        if successor:
            assert stop_orphan(successor) == 0
        proc.stop()
    for tally in load.tallies:
        assert tally.errors == [] and tally.refused == 0, f"{tally.name}: {tally}"
        assert tally.ok >= 6, f"{tally.name}: {tally}"
    assert not control.exists() and not pid_file.exists()


QUITTER = """#!{python}
import os, socket, sys
path = sys.argv[sys.argv.index("--upgrade-from") + 1]
pid_file = sys.argv[sys.argv.index("--pid-file") + 1]
with socket.socket(socket.AF_UNIX) as sock:
    sock.connect(path)
    sock.sendall(b"handoff\\n")
    data, fds, _, _ = socket.recv_fds(sock, 65536, 64)
    assert fds and data.endswith(b"\\n")
    sock.sendall(b"ready\\n")
    assert sock.recv(100) == b"go\\n"
    with open(pid_file, "w") as out:
        out.write(str(os.getpid()))
sys.exit(7)
"""


def write_program(path: Path, body: str) -> None:
    path.write_text(body)
    path.chmod(0o755)


def test_a_failed_successor_leaves_the_old_process_serving(tmp_path: Path, subreaper: None) -> None:
    """The successor runs ``sys.argv[0]``: a program the test swaps for broken "new versions"."""
    config, control, pid_file = tmp_path / "config.toml", tmp_path / "control.sock", tmp_path / "mm.pid"
    program = tmp_path / "bin" / "modelmux"
    program.parent.mkdir()
    good = f"#!{sys.executable}\nimport sys\nfrom modelmux.cli.main import main\nsys.exit(main())\n"
    write_program(program, good)
    config.write_text(config_text())
    proc = ServeProcess(["serve", "--config", str(config), "--control-socket", str(control),
                         "--pid-file", str(pid_file)], home=tmp_path, program=[str(program)])
    old_pid, successor = proc.proc.pid, 0

    def still_serving() -> None:
        assert health_pid(proc) == old_pid and read_pid(pid_file) == old_pid and control.is_socket()

    try:
        config.write_text(config_text() + "surprise = 1\n")
        refused = upgrade(control)
        assert refused.returncode == 1 and "configuration is invalid" in refused.stderr
        assert "surprise" in refused.stderr
        still_serving()
        config.write_text(config_text())

        # a new version that rejects the config: it got the sockets, then says why it stops
        write_program(program, f"#!/bin/sh\nMODELMUX_SERVER_DRAIN_TIMEOUT=soon exec {sys.executable} "
                               f"-m modelmux \"$@\"\n")
        rejected = upgrade(control)
        assert rejected.returncode == 1, rejected.stdout
        assert "did not start: invalid configuration" in rejected.stderr and "drain_timeout" in rejected.stderr
        still_serving()

        write_program(program, "#!/bin/sh\necho 'modelmux: this build is broken' >&2\nexit 3\n")
        crashed = upgrade(control)
        assert crashed.returncode == 1 and "exited with code 3" in crashed.stderr
        still_serving()

        write_program(program, "#!/bin/sh\nexec sleep 60\n")
        hung = upgrade(control, "--timeout", "1")
        assert hung.returncode == 1 and "in time" in hung.stderr
        assert "keeps serving" in hung.stderr
        still_serving()

        # one that dies after "go", having written the pid file: the old process takes both back
        write_program(program, QUITTER.format(python=sys.executable))
        quit_early = upgrade(control)
        assert quit_early.returncode == 1 and "did not finish taking over" in quit_early.stderr
        still_serving()

        write_program(program, good)
        done = upgrade(control)
        assert done.returncode == 0, done.stderr
        successor = read_pid(pid_file)
        assert successor != old_pid
        assert proc.proc.wait(30) == 0
        assert health_pid(proc) == successor
    finally:
        if successor:
            assert stop_orphan(successor) == 0
        proc.stop()
