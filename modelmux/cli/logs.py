"""``modelmux logs [-f]``: show (or follow) the service log.

ModelMux logs to stderr and, with ``[logging] file``, to that file. ``logs`` reads the configured
file, else ``$XDG_STATE_HOME/modelmux/modelmux.log`` (or 1.x's dated files); under systemd it
explains ``journalctl``. ``-f`` follows across rotation (rename or truncation) by polling.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from modelmux.cli.common import OK, add_config_option
from modelmux.config.load import load_config
from modelmux.config.paths import default_log_file, expand_user, home_dir, legacy_log_dirs
from modelmux.config.problems import ConfigError

POLL_SECONDS = 0.2
SYSTEM_UNITS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
EPILOG = """EXAMPLES:
  modelmux logs                 the last 50 lines
  modelmux logs -n 200
  modelmux logs -f              follow (Ctrl-C stops); survives logrotate
  modelmux logs --file /var/log/modelmux.log -f

Where logs go: always stderr (journald under systemd: `journalctl -u modelmux`); also the file
named by [logging] file. Without one, `logs` looks for $XDG_STATE_HOME/modelmux/modelmux.log."""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "logs", help="show or follow the service log", epilog=EPILOG,
        description="Show the end of the ModelMux log file, or follow it.")
    parser.add_argument("-f", "--follow", action="store_true",
                        help="keep printing new lines, across log rotation")
    parser.add_argument("-n", "--lines", type=int, default=50, metavar="N",
                        help="how many lines to show first (default 50)")
    parser.add_argument("--file", type=Path, metavar="LOG", help="read this log file")
    add_config_option(parser)


def find_log(ns: argparse.Namespace, environ: Mapping[str, str]) -> Path | None:
    """The log file to read: ``--file``, the configured file, the default or 1.x's newest."""
    if ns.file is not None:
        return Path(ns.file)
    try:
        configured = load_config(ns.config, migrate_macos=False).config.logging.file
    except ConfigError:
        print("warning: the configuration is invalid; looking for a log in the default places",
              file=sys.stderr)
        configured = None
    if configured:
        return Path(expand_user(configured, environ))
    default = default_log_file(environ)
    if default.is_file():
        return default
    dated = [p for folder in legacy_log_dirs(environ) if folder.is_dir()
             for p in folder.glob("modelmux.log*") if p.is_file()]
    return max(dated, key=lambda p: p.stat().st_mtime) if dated else None


def systemd_unit(environ: Mapping[str, str]) -> str | None:
    """The journalctl command for an installed modelmux unit, when systemd runs this machine."""
    if not os.path.isdir("/run/systemd/system"):
        return None
    user = home_dir(environ) / ".config/systemd/user/modelmux.service"
    if user.is_file():
        return "journalctl --user -u modelmux"
    if any(os.path.isfile(f"{folder}/modelmux.service") for folder in SYSTEM_UNITS):
        return "journalctl -u modelmux"
    return None


def tail(path: Path, count: int, block: int = 65536) -> tuple[list[str], int]:
    """The last ``count`` lines of ``path`` and the file size they end at (read from the end)."""
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        data, position = b"", end
        while position > 0 and data.count(b"\n") <= count:
            step = min(block, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = data.decode("utf-8", "replace").splitlines()
    return (lines[-count:] if count > 0 else []), end


class Follower:
    """Reads lines appended to a path; reopens it when rotated (new inode) or truncated."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self.handle: BinaryIO | None = None
        self.inode: int | None = None
        self.pending = b""

    def _open(self, offset: int) -> None:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - kept open across polls
        except OSError:
            return
        self.close()
        self.handle, self.inode = handle, os.fstat(handle.fileno()).st_ino
        handle.seek(min(offset, os.fstat(handle.fileno()).st_size))

    def _drain(self) -> list[str]:
        if self.handle is None:
            return []
        data = self.pending + self.handle.read()
        *complete, self.pending = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in complete]

    def poll(self) -> list[str]:
        """The complete lines written since the last poll."""
        if self.handle is None:
            self._open(self.offset)
            return self._drain()
        lines = self._drain()
        try:
            current = os.stat(self.path)
        except OSError:
            return lines  # rotated away and not recreated yet: keep the old file open
        if current.st_ino != self.inode:
            if self.pending:
                lines.append(self.pending.decode("utf-8", "replace"))
                self.pending = b""
            self._open(0)
            lines += self._drain()
        elif current.st_size < self.handle.tell():
            self.handle.seek(0)
            self.pending = b""
            lines += self._drain()
        return lines

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def run(ns: argparse.Namespace) -> int:
    environ = os.environ
    path = find_log(ns, environ)
    if path is None:
        unit = systemd_unit(environ)
        if unit is not None:
            print(f"ModelMux runs under systemd here; its log is in the journal:\n  {unit}"
                  + (" -f" if ns.follow else ""))
        else:
            print(f"No log file found. ModelMux logs to stderr; to keep a file, set [logging] "
                  f"file (e.g. \"{default_log_file(environ)}\") and `modelmux logs` reads it.")
        return OK
    offset = 0
    if path.is_file():
        lines, offset = tail(path, ns.lines)
        print(f"==> {path} <==", file=sys.stderr)
        print("\n".join(lines) + ("\n" if lines else ""), end="", flush=True)
    elif not ns.follow:
        print(f"{path} does not exist yet: ModelMux creates it when it starts.")
        return OK
    if not ns.follow:
        return OK
    print(f"--- following {path} (Ctrl-C stops) ---", file=sys.stderr, flush=True)
    follower = Follower(path, offset)
    try:
        while True:
            for line in follower.poll():
                print(line, flush=True)
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        return OK
    except BrokenPipeError:
        return OK
    finally:
        follower.close()
