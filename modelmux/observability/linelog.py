"""Buffered log output: whole lines appended to a buffer and written in large writes.

The access log writes one line per request; through ``logging`` that cost a LogRecord, a
formatter and a locked ``write`` each. Here a line is appended to a list, and the list is written
when 64 KiB wait, ``FLUSH_DELAY`` after the first line of a batch (one timer on the running
loop), before any ordinary log line (so lines stay in order), and on close and at exit.

A write never cuts a line: to a pipe, socket or terminal the buffer goes out in chunks of whole
lines of at most ``PIPE_BUF`` bytes, which the kernel writes atomically even when several worker
processes share the descriptor. Inside a running loop a destination that is not ready (a full
pipe) is not waited for: the bytes stay queued, a timer tries again, and past ``MAX_BACKLOG`` new
lines are dropped, counted, and reported in a warning once the destination drains.
"""

from __future__ import annotations

import atexit
import logging
import os
import select
import stat
import sys
import threading
import time
import weakref
from asyncio import AbstractEventLoop, TimerHandle
from asyncio import _get_running_loop as running_loop
from typing import TextIO

FLUSH_BYTES = 64 * 1024
"""Buffered characters that trigger a write at once."""
FLUSH_DELAY = 0.1
"""Seconds a line may wait in the buffer while the server is idle."""
MAX_BACKLOG = 4 * 1024 * 1024
"""Bytes queued for a destination that does not keep up before new lines are dropped."""
ATOMIC = select.PIPE_BUF


class LogTarget:
    """One destination: a descriptor, or a path reopened when logrotate moves the file."""

    def __init__(self, fd: int | None = None, path: str | None = None,
                 stream: TextIO | None = None) -> None:
        """``path`` opens (and owns) the file; ``stream`` is for a ``sys.stderr`` without a
        descriptor (a test's capture); otherwise ``fd`` is written and never closed.

        Raises:
            OSError: ``path`` cannot be opened.
        """
        self.path = path
        self.stream = stream
        self.fd = self._open() if path is not None else fd
        self.pending = bytearray()
        self.whole = True  # a regular file takes one write of any size
        if self.fd is not None:
            try:
                self.whole = stat.S_ISREG(os.fstat(self.fd).st_mode)
            except OSError:
                self.whole = False
        self._poll = None if self.whole or self.fd is None else select.poll()
        if self._poll is not None:
            self._poll.register(self.fd, select.POLLOUT)

    def _open(self) -> int:
        assert self.path is not None
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)

    def _reopen_if_moved(self) -> None:
        """What ``WatchedFileHandler`` does: a moved or deleted file is replaced by a new one."""
        assert self.fd is not None
        try:
            now = os.stat(self.path)  # type: ignore[arg-type]
            mine = os.fstat(self.fd)
            if (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
                return
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = self._open()

    def write(self, data: bytes, block: bool) -> None:
        """Queue ``data`` (whole lines) and write what the destination takes; with ``block``
        wait until everything is written.

        Raises:
            OSError: the destination failed (not merely full).
        """
        self.pending += data
        if self.stream is not None:
            self.stream.write(self.pending.decode("utf-8", "replace"))
            self.stream.flush()
            del self.pending[:]
            return
        if self.path is not None:
            self._reopen_if_moved()
        while self.pending:
            chunk = self._next_chunk()
            if not block and self._poll is not None and not self._poll.poll(0):
                return
            try:
                written = os.write(self.fd, chunk)  # type: ignore[arg-type]
            except BlockingIOError:
                if not block:
                    return
                select.select([], [self.fd], [], 1.0)
                continue
            except InterruptedError:
                continue
            del self.pending[:written]

    def _next_chunk(self) -> bytes:
        """The queued bytes to write next: all of them for a file, else whole lines up to
        ``ATOMIC`` bytes (a longer line alone)."""
        pending = self.pending
        if self.whole or len(pending) <= ATOMIC:
            return bytes(pending)
        end = pending.rfind(b"\n", 0, ATOMIC) + 1 or pending.find(b"\n") + 1 or len(pending)
        return bytes(pending[:end])

    def close(self) -> None:
        if self.path is not None and self.fd is not None:
            os.close(self.fd)
            self.fd = None


class LineLog:
    """Lines for one or more ``LogTarget``s, buffered; ``fmt`` names the line format (text, json)."""

    def __init__(self, targets: list[LogTarget], fmt: str = "text", *,
                 max_backlog: int = MAX_BACKLOG) -> None:
        self.targets = targets
        self.fmt = fmt
        self.max_backlog = max_backlog
        self.dropped = 0
        self._lines: list[str] = []
        self._size = 0
        self._backlog = 0
        self._timer: TimerHandle | None = None
        self._timer_loop: AbstractEventLoop | None = None
        self._lock = threading.RLock()
        _open_logs.add(self)

    def add(self, line: str) -> None:
        """Append one line (ending in ``\\n``); the hot path: no lock, no system call."""
        lines = self._lines
        if self._backlog > self.max_backlog:
            self.dropped += 1
            return
        lines.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES:
            self.flush()
            return
        loop = running_loop()
        if loop is None:
            self.flush()
        elif self._timer is None or self._timer_loop is not loop:
            self._timer = loop.call_later(FLUSH_DELAY, self._on_timer)
            self._timer_loop = loop

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()

    def flush(self, block: bool | None = None) -> None:
        """Write the buffer; ``block`` defaults to "no running loop here" (start-up, exit,
        another thread). Lines a loop could not write yet are retried by the timer."""
        if block is None:
            block = running_loop() is None
        with self._lock:
            lines = self._lines
            count = len(lines)
            data = "".join(lines[:count]).encode("utf-8", "backslashreplace") if count else b""
            del lines[:count]  # lines appended meanwhile stay
            self._size = sum(map(len, lines))
            backlog = 0
            for target in self.targets:
                if data or target.pending:
                    try:
                        target.write(data, block)
                    except OSError as exc:
                        target.pending.clear()
                        _complain(exc)
                backlog = max(backlog, len(target.pending))
            self._backlog = backlog
            dropped, self.dropped = self.dropped, (self.dropped if backlog else 0)
        if backlog and self._timer is None and not block:
            self._arm_retry()
        elif dropped and not backlog:
            logging.getLogger("modelmux.access").warning(
                "%d access log line(s) dropped: the log destination did not keep up", dropped)

    def _arm_retry(self) -> None:
        loop = running_loop()
        if loop is not None:
            self._timer = loop.call_later(FLUSH_DELAY, self._on_timer)
            self._timer_loop = loop

    def close(self) -> None:
        """Write everything (waiting for the destination) and close owned files."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush(block=True)
        for target in self.targets:
            target.close()
        _open_logs.discard(self)


def _complain(exc: OSError) -> None:
    """Say on the original stderr, if it still works, that a log destination failed."""
    try:
        print(f"modelmux: cannot write the log: {exc}", file=sys.__stderr__)
    except (OSError, ValueError, AttributeError):
        pass


class LineHandler(logging.Handler):
    """The ``logging`` handler in front of a ``LineLog``: an ordinary record is formatted,
    appended after the lines already buffered, and written at once."""

    def __init__(self, lines: LineLog, formatter: logging.Formatter) -> None:
        super().__init__()
        self.lines = lines
        self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            lines = self.lines
            lines._lines.append(line + "\n")
            lines._size += len(line) + 1
            lines.flush()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.lines.flush()

    def close(self) -> None:
        self.lines.close()
        super().close()


class Stamp:
    """``logging.Formatter.formatTime``'s text (``2025-01-01 12:00:00,123``), the date and
    time formatted once a second."""

    __slots__ = ("second", "text")

    def __init__(self) -> None:
        self.second = -1
        self.text = ""

    def at(self, now_ns: int) -> str:
        """The stamp of ``now_ns`` (``time.time_ns()``). Integer arithmetic and a method, not
        ``__call__``: both keep the per-line cost down."""
        second = now_ns // 1_000_000_000
        if second != self.second:
            self.text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self.second = second
        return self.text + _MILLIS[now_ns // 1_000_000 % 1000]


_MILLIS = [f",{ms:03d}" for ms in range(1000)]


_open_logs: weakref.WeakSet[LineLog] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """The last resort: an exit that skipped ``close`` still writes the buffered lines."""
    for lines in list(_open_logs):
        try:
            lines.flush(block=True)
        except Exception:  # noqa: BLE001 - nothing can be reported this late
            pass


def _after_fork() -> None:
    """A forked child starts with an empty buffer: its parent writes its own lines."""
    for lines in list(_open_logs):
        lines._lines.clear()
        lines._size = 0
        lines._timer = None


os.register_at_fork(after_in_child=_after_fork)
