"""Metrics totals across ``serve --workers N``: a directory of per-worker snapshots.

The supervisor makes a private directory (``worker_directory``) and names it to each worker.
Each worker writes its registry there as ``<pid>.json`` (atomically, by rename) shortly after
requests start or finish, at most every ``interval`` seconds, and when it stops. A scrape on
any worker publishes its own live registry, reads the others' files and answers with the
sum (``metrics.merge``): counters and histograms of every worker that ever ran under this
supervisor, gauges of the live ones. The files are tiny and the reads happen only on scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from modelmux.observability.metrics import Registry, Snapshot, merge

log = logging.getLogger("modelmux.metrics")

INTERVAL = 0.5
"""Seconds between two publications of one worker: how stale another worker's numbers can be."""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(list[dict[str, Any]])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def worker_directory() -> Iterator[str]:
    """A fresh 0700 directory for the workers' snapshots (under ``$XDG_RUNTIME_DIR`` when set),
    removed with everything in it on exit."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    path = tempfile.mkdtemp(prefix="modelmux-metrics-",
                            dir=base if base and os.path.isdir(base) else None)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class SharedMetrics:
    """One worker's side of the snapshot directory."""

    def __init__(self, directory: str | Path, pid: int | None = None,
                 interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = Path(directory)
        self.pid = os.getpid() if pid is None else pid
        self.interval = interval
        self._clock = clock
        self._last = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self._pending: tuple[Registry, Callable[[], None]] | None = None
        self._warned = False

    def publish(self, registry: Registry) -> None:
        """Write this worker's snapshot now (a failure is logged once, never raised)."""
        target = self.directory / f"{self.pid}.json"
        temporary = self.directory / f".{self.pid}.tmp"
        try:
            temporary.write_bytes(_encode(registry.snapshot()))
            os.replace(temporary, target)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot publish metrics to %s (%s): /metrics on other workers will "
                            "miss this one's counts", self.directory, exc.strerror or exc)
        self._last = self._clock()

    def soon(self, registry: Registry, refresh: Callable[[], None]) -> None:
        """Publish after the current request's work, within ``interval`` of the last time;
        ``refresh`` first sets the snapshot gauges (pool, connections)."""
        self._pending = (registry, refresh)
        if self._timer is not None:
            return
        delay = max(self._last + self.interval - self._clock(), 0.0)
        self._timer = asyncio.get_running_loop().call_later(delay, self._flush)

    def _flush(self) -> None:
        self._timer = None
        pending, self._pending = self._pending, None
        if pending is not None:
            registry, refresh = pending
            refresh()
            self.publish(registry)

    def close(self, registry: Registry) -> None:
        """The last publication of this worker (at shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending = None
        self.publish(registry)

    def merged(self, registry: Registry) -> Registry:
        """Every worker's totals, this one's taken live."""
        self.publish(registry)
        own = registry.snapshot()
        snapshots: list[tuple[list[Snapshot], bool]] = [(own, True)]
        for path in sorted(self.directory.glob("*.json")):
            try:
                pid = int(path.stem)
            except ValueError:
                continue
            if pid == self.pid:
                continue
            try:
                families = _decode.decode(path.read_bytes())
            except (OSError, msgspec.DecodeError, msgspec.ValidationError):
                continue  # gone, or being replaced: the next scrape sees it
            snapshots.append((families, _alive(pid)))
        return merge(snapshots)
