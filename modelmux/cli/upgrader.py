"""``modelmux upgrade`` inside the running server: start a successor and hand it the sockets.

The running server starts the successor itself (the same command line, so the newly installed
code), which keeps it in the same service cgroup under systemd, with the same user, sandbox and
environment. The successor connects back over the control socket and gets the listening sockets
(``server/handoff.py``). Only once it reports ``ready`` and has taken the control socket and pid
file does this process tell systemd the new main pid, stop accepting and drain. If the
successor fails, exits or times out first, it is stopped and this process carries on serving.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from modelmux.config.problems import ConfigError
from modelmux.server import handoff
from modelmux.server.control import ControlServer
from modelmux.server.notify import notify
from modelmux.server.pidfile import write_pid

log = logging.getLogger("modelmux.upgrade")

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
_POLL = 0.05

ChildLink = tuple[int, asyncio.StreamReader, asyncio.StreamWriter]
T = TypeVar("T")


class UpgradeFailed(Exception):
    """The successor did not take over; the message says why."""


def successor_command(control_path: Path) -> list[str]:
    """This process's own command line, pointed at ``control_path`` for the hand-off.

    ``sys.argv[0]`` is the installed ``modelmux`` script (the .deb launcher, a pip or pipx
    entry point), which after an upgrade runs the new code; under ``python -m modelmux`` the
    interpreter runs the module again.
    """
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--upgrade-from":
            skip = True
        elif not arg.startswith("--upgrade-from="):
            args.append(arg)
    program = sys.argv[0]
    if program.endswith(".py") or not os.access(program, os.X_OK):
        command = [sys.executable, "-m", "modelmux"]
    else:
        command = [program]
    return [*command, *args, "--upgrade-from", str(control_path)]


class Upgrader:
    """The ``upgrade`` command and ``handoff`` session of one serving process's control socket.

    ``fds`` gives the listening sockets to hand over; ``retire`` starts this process's drain
    once the successor has taken over; ``validate`` checks the config as it is now.
    """

    def __init__(self, fds: Callable[[], list[int]], retire: Callable[[], None],
                 validate: Callable[[], object]) -> None:
        self.fds = fds
        self.retire = retire
        self.validate = validate
        self.control: ControlServer | None = None
        self.pid_file: Path | None = None
        self._arrival: asyncio.Future[ChildLink] | None = None
        self._finished: asyncio.Future[None] | None = None
        self.done = False

    async def upgrade(self, arg: str) -> tuple[bool, str]:
        """Start a successor and hand over to it; returns (ok, what happened)."""
        if self.done or self.control is None:
            return False, "upgrade refused: this process is not the one serving (already handed over?)"
        try:
            timeout = float(arg) if arg else READY_TIMEOUT
        except ValueError:
            return False, f"upgrade refused: timeout {arg!r} is not a number of seconds"
        try:
            self.validate()
        except ConfigError as exc:
            exc.log(log, "upgrade refused; the configuration is invalid")
            return False, f"upgrade refused: the configuration is invalid; this process keeps serving.\n{exc}"
        loop = asyncio.get_running_loop()
        self._arrival, self._finished = loop.create_future(), loop.create_future()
        command = successor_command(self.control.path)
        log.info("upgrade: starting %s", " ".join(command))
        try:  # not asyncio's subprocess: that kills a still-running child when its loop closes
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL)  # noqa: ASYNC220 (fork+exec only)
        except OSError as exc:
            self._arrival = None
            return False, f"upgrade failed: cannot start {command[0]}: {exc}; this process keeps serving"
        try:
            pid = await self._hand_over(proc, time.monotonic() + timeout)
        except UpgradeFailed as exc:
            log.error("upgrade failed: %s; this process (pid %d) keeps serving", exc, os.getpid())
            await _stop(proc)
            if not self.control.listening:  # released for the successor: take it back
                await self._reclaim()
            return False, f"upgrade failed: {exc}; the old process (pid {os.getpid()}) keeps serving"
        finally:
            self._arrival = None
            if not self._finished.done():
                self._finished.set_result(None)
        self.done = True
        notify(f"MAINPID={pid}")
        log.info("upgrade: pid %d serves now; this process (pid %d) stops accepting and drains",
                 pid, os.getpid())
        loop.call_soon(self.retire)
        return True, f"upgraded: pid {pid} serves now; the old process (pid {os.getpid()}) is draining"

    async def _reclaim(self) -> None:
        """The control socket and pid file again, after a successor failed having taken them."""
        assert self.control is not None
        try:
            await self.control.start()
            if self.pid_file is not None:
                write_pid(self.pid_file)
        except OSError as exc:
            log.error("cannot take the control socket %s or pid file back: %s", self.control.path, exc)

    async def _hand_over(self, proc: subprocess.Popen[bytes], deadline: float) -> int:
        """Drive the hand-off to ``done``; returns the successor's pid.

        Raises:
            UpgradeFailed: the successor failed, exited or ran out of time.
        """
        assert self._arrival is not None and self.control is not None
        pid, reader, writer = await _watch(self._arrival, proc, deadline, "connect back")
        try:
            handoff.send_sockets(writer, self.fds(), {"pid": os.getpid()})
        except OSError as exc:
            raise UpgradeFailed(f"cannot send the listening sockets: {exc}") from exc
        line = await _watch(handoff.read_line(reader, max(0.0, deadline - time.monotonic())),
                            proc, deadline, "become ready")
        if line != "ready":
            raise UpgradeFailed(f"the new process (pid {pid}) did not start: {handoff.failure_reason(line)}")
        self.control.release()
        try:
            writer.write(b"go\n")
            await writer.drain()
            line = await _watch(handoff.read_line(reader), proc, time.monotonic() + handoff.LINE_TIMEOUT,
                                "take over the control socket")
        except (OSError, UpgradeFailed) as exc:
            raise UpgradeFailed(f"the new process (pid {pid}) did not finish taking over: {exc}") from exc
        if line != "done":
            raise UpgradeFailed(f"the new process (pid {pid}) did not take over: {handoff.failure_reason(line)}")
        return pid

    async def handoff(self, arg: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The successor's connection: passed to the waiting ``upgrade``, held until it is done."""
        arrival, finished = self._arrival, self._finished
        if arrival is None or arrival.done() or finished is None:
            writer.write(b'{"error": "no upgrade is in progress"}\n')
            await writer.drain()
            return
        arrival.set_result((handoff.peer_pid(writer), reader, writer))
        await finished


async def _watch(awaitable: Awaitable[T], proc: subprocess.Popen[bytes], deadline: float, what: str) -> T:
    """Await ``awaitable`` while watching that ``proc`` is alive and ``deadline`` not passed.

    Raises:
        UpgradeFailed: the process exited, the deadline passed, or the hand-off broke off.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        while not task.done():
            code = proc.poll()
            if code is not None:
                raise UpgradeFailed(f"the new process (pid {proc.pid}) exited with code {code} "
                                    f"before it could {what} (its log says why)")
            left = deadline - time.monotonic()
            if left <= 0:
                raise UpgradeFailed(f"the new process (pid {proc.pid}) did not {what} in time")
            await asyncio.wait({task}, timeout=min(_POLL, left))
        try:
            return task.result()
        except handoff.HandoffError as exc:
            raise UpgradeFailed(f"the new process (pid {proc.pid}) broke off: {exc}") from exc
    finally:
        if not task.done():
            task.cancel()


async def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (it may be serving a few requests already), SIGKILL after ``STOP_TIMEOUT``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(_POLL)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
