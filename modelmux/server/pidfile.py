"""The pid file (``serve --pid-file PATH``): written once serving, taken over by an upgrade.

Written atomically (temporary file, then rename), so a reader never sees half a pid; removed at
exit only while it still names this process, so a predecessor never deletes its successor's.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_pid(path: Path, pid: int | None = None) -> None:
    """Point ``path`` at ``pid`` (default: this process).

    Raises:
        OSError: the folder cannot be created or written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(f"{pid or os.getpid()}\n")
    os.replace(temporary, path)


def read_pid(path: Path) -> int | None:
    """The pid in ``path``, or None when there is no such file or it holds no number."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def remove_pid(path: Path, pid: int | None = None) -> None:
    """Remove ``path`` if it names ``pid`` (default: this process)."""
    if read_pid(path) == (pid or os.getpid()):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
