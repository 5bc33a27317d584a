"""Memory of local server processes from ``/proc`` (Linux): resident size now and its peak.

A process counts with its descendants, so a supervisor with workers is measured whole. On a
system without ``/proc`` every reading is 0.
"""

from __future__ import annotations

from collections.abc import Iterable


def _status_kb(pid: int, field: bytes) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it (via ``/proc/PID/task/*/children``)."""
    found = [pid]
    index = 0
    while index < len(found) and len(found) < 4096:
        current = found[index]
        index += 1
        try:
            with open(f"/proc/{current}/task/{current}/children", "rb") as children:
                found.extend(int(child) for child in children.read().split())
        except (OSError, ValueError):
            continue
    return found


def tree_rss(pids: Iterable[int]) -> int:
    """Current resident bytes (VmRSS) of ``pids`` and their descendants."""
    return sum(_status_kb(p, b"VmRSS:") for pid in pids for p in descendants(pid)) * 1024


def tree_hwm(pids: Iterable[int]) -> int:
    """Sum of each process's peak resident bytes (VmHWM) over ``pids`` and their descendants."""
    return sum(_status_kb(p, b"VmHWM:") for pid in pids for p in descendants(pid)) * 1024
