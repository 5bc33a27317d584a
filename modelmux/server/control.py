"""The control socket: a unix socket (mode 0600) that ``modelmux reload`` talks to.

One request per connection: a command line (``reload``, ``upgrade 60``: a name and an optional
argument) in, one JSON line out (``{"ok": bool, "message": str}``). A *session* command (the
upgrade hand-off) instead gets the connection itself. The server side only parses and dispatches;
what a command does is the callback's business. The client side is what the CLI uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("modelmux.control")

Command = Callable[[str], Awaitable[tuple[bool, str]]]
Session = Callable[[str, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
MAX_LINE = 1024


def default_path() -> Path:
    """``$XDG_RUNTIME_DIR/modelmux/control.sock``, else ``/run/modelmux/control.sock`` when that
    folder is writable, else ``~/.local/state/modelmux/control.sock``."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "modelmux" / "control.sock"
    run = Path("/run/modelmux")
    if run.is_dir() and os.access(run, os.W_OK):
        return run / "control.sock"
    return Path.home() / ".local" / "state" / "modelmux" / "control.sock"


def find_socket() -> Path:
    """For a client: the first existing socket among the places servers use, else the default."""
    candidates = [default_path(), Path("/run/modelmux/control.sock"),
                  Path.home() / ".local" / "state" / "modelmux" / "control.sock"]
    return next((path for path in candidates if path.is_socket()), candidates[0])


class ControlServer:
    """Listens on ``path`` and runs the named commands, one at a time; sessions run beside them."""

    def __init__(self, path: Path, commands: dict[str, Command],
                 sessions: dict[str, Session] | None = None) -> None:
        self.path = path
        self.commands = commands
        self.sessions = sessions or {}
        self._server: asyncio.AbstractServer | None = None
        self._inode = 0  # of the socket file this server bound
        self._lock = asyncio.Lock()

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Bind the socket with owner-only permissions, replacing a stale one (nothing listens).

        A socket another server listens on is never replaced: its server stays reachable.

        Raises:
            OSError: the folder cannot be created, another server listens on the path
                (EADDRINUSE), or the socket cannot be bound.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.path.is_socket():
            if _listened_on(self.path):
                raise OSError(errno.EADDRINUSE, "another server listens there")
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(str(self.path))  # unlike start_unix_server(path=), never unlinks what is there
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old_umask)
        try:
            os.chmod(self.path, 0o600)
            self._inode = self.path.stat().st_ino
            self._server = await asyncio.start_unix_server(self._serve, sock=sock)
        except OSError:
            sock.close()
            self.path.unlink(missing_ok=True)
            raise

    async def close(self) -> None:
        if self._server is not None:
            self.release()

    def release(self) -> None:
        """Stop listening and remove the socket file (so a successor can bind the path).

        Connections already open (the caller's own) carry on; waiting for them here would
        deadlock a command that releases the socket it is answering on.
        """
        if self._server is not None:
            self._server.close()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                if self.path.stat().st_ino == self._inode:  # not a socket someone else bound since
                    self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10.0)
            name, _, arg = line[:MAX_LINE].decode("utf-8", "replace").strip().partition(" ")
            session = self.sessions.get(name)
            if session is not None:
                await session(arg, reader, writer)
                return
            command = self.commands.get(name)
            if command is None:
                ok, message = False, f"unknown command {name!r}; known: {', '.join(self.commands)}"
            else:
                async with self._lock:
                    ok, message = await command(arg)
            writer.write(json.dumps({"ok": ok, "message": message}).encode() + b"\n")
            await writer.drain()
        except (OSError, TimeoutError) as exc:
            log.info("control connection failed: %s", exc)
        except Exception:
            log.exception("control command failed")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _listened_on(path: Path) -> bool:
    """Whether a server listens on the socket at ``path``: anything but a refused connect (a
    busy or foreign server's socket, one that times out or denies access, is not stale)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            return True
    return True


def send(path: Path, command: str, timeout: float = 60.0) -> tuple[bool, str]:
    """Run ``command`` on the server behind ``path``; returns (ok, message).

    Raises:
        OSError: nothing listens there.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(command.encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    answer = json.loads(data or b'{"ok": false, "message": "no answer"}')
    return bool(answer["ok"]), str(answer["message"])
