"""The listening-socket hand-off of ``modelmux upgrade``, over the control socket (SCM_RIGHTS).

The successor connects to its predecessor's control socket and the two exchange lines:

    successor   -> predecessor   handoff
    predecessor -> successor     {"pid": ..., "sockets": N}   (the N listening fds attached)
    successor   -> predecessor   ready | failed "reason"      (serving on them, or why not)
    predecessor -> successor     go                           (control socket path released)
    successor   -> predecessor   done                         (control socket and pid file taken)

Only after ``done`` does the predecessor stop accepting and drain. This module owns the wire
format and the successor's side (``Takeover``); the predecessor's side is ``cli/upgrader.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

MAX_FDS = 64
LINE_TIMEOUT = 30.0


class HandoffError(Exception):
    """The hand-off broke off: the other side went away, answered nonsense, or took too long."""


def peer_pid(writer: asyncio.StreamWriter) -> int:
    """The pid of the process on the other end of a unix stream connection (SO_PEERCRED)."""
    sock = writer.get_extra_info("socket")
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid: int = struct.unpack("3i", creds)[0]
    return pid


def send_sockets(writer: asyncio.StreamWriter, fds: list[int], info: dict[str, object]) -> None:
    """Send ``info`` as one JSON line with ``fds`` attached (SCM_RIGHTS) on a unix connection.

    The message is a few hundred bytes on an otherwise idle connection, so the one ``sendmsg``
    on a duplicate of the transport's socket goes out whole and ahead of any later write.

    Raises:
        OSError: the connection is gone.
    """
    raw = writer.get_extra_info("socket")
    with socket.socket(fileno=os.dup(raw.fileno())) as sock:
        line = json.dumps({**info, "sockets": len(fds)}).encode() + b"\n"
        sent = socket.send_fds(sock, [line], fds)
    if sent != len(line):
        raise OSError(f"short send of the hand-off message ({sent} of {len(line)} bytes)")


async def read_line(reader: asyncio.StreamReader, timeout: float = LINE_TIMEOUT) -> str:
    """The next line, stripped.

    Raises:
        HandoffError: end of stream or ``timeout`` seconds without one.
    """
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (TimeoutError, OSError, ValueError) as exc:
        raise HandoffError(f"no answer ({type(exc).__name__})") from exc
    if not line.endswith(b"\n"):
        raise HandoffError("the other process closed the connection")
    return line.decode("utf-8", "replace").strip()


def failure_reason(line: str) -> str:
    """The reason from a ``failed "..."`` line (or the line itself when it is something else)."""
    if line.startswith("failed "):
        try:
            return str(json.loads(line.removeprefix("failed ")))
        except ValueError:
            return line.removeprefix("failed ")
    return f"unexpected answer {line[:200]!r}"


class Takeover:
    """The successor's side: receives the sockets, reports ready, takes over the control socket."""

    def __init__(self, path: Path, sock: socket.socket, sockets: list[socket.socket],
                 info: dict[str, object]) -> None:
        self.path = path
        self.sock = sock
        self.sockets = sockets
        self.info = info

    @classmethod
    def connect(cls, path: Path, timeout: float = LINE_TIMEOUT) -> Takeover:
        """Connect to the predecessor at ``path`` and receive its listening sockets (blocking).

        Raises:
            HandoffError: nothing answers there, or it sent no sockets.
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(b"handoff\n")
            data, fds, _, _ = socket.recv_fds(sock, 65536, MAX_FDS)
            while data and not data.endswith(b"\n") and len(data) < 65536:
                more = sock.recv(65536)
                if not more:
                    break
                data += more
        except OSError as exc:
            sock.close()
            raise HandoffError(f"cannot receive the sockets from {path}: {exc}") from exc
        try:
            info = json.loads(data) if data.endswith(b"\n") else {}
        except ValueError:
            info = {}
        if not fds or not isinstance(info, dict) or info.get("sockets") != len(fds):
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            sock.close()
            reason = info.get("error") if isinstance(info, dict) else None
            raise HandoffError(f"the server at {path} handed over no sockets"
                               + (f": {reason}" if reason else ""))
        return cls(path, sock, [socket.socket(fileno=fd) for fd in fds], info)

    def fail(self, reason: str) -> None:
        """Tell the predecessor why this process cannot take over (it keeps serving)."""
        with contextlib.suppress(OSError):
            self.sock.sendall(b"failed " + json.dumps(reason).encode() + b"\n")
        self.close()

    async def complete(self, take_over: Callable[[], Awaitable[None]]) -> None:
        """Report ready, wait for ``go``, run ``take_over`` (control socket, pid file), say ``done``.

        Raises:
            HandoffError: the predecessor went away or refused.
        """
        self.sock.setblocking(False)
        reader, writer = await asyncio.open_unix_connection(sock=self.sock)
        try:
            writer.write(b"ready\n")
            await writer.drain()
            line = await read_line(reader)
            if line != "go":
                raise HandoffError(f"the old process answered {line[:200]!r} instead of go")
            await take_over()
            writer.write(b"done\n")
            await writer.drain()
        except OSError as exc:
            raise HandoffError(f"lost the old process: {exc}") from exc
        finally:
            writer.close()

    def close(self) -> None:
        self.sock.close()
