"""Multi-process serving: a supervisor that shares its listening sockets with N workers.

The supervisor binds once and starts each worker as ``modelmux serve`` with the sockets as
inherited file descriptors, a ready pipe (the worker writes one byte once it accepts) and a
lifeline pipe (EOF tells a worker its supervisor is gone). It restarts crashed workers with a
backoff, forwards stop signals, and waits for every worker to drain before exiting. After an
upgrade hand-over its workers get SIGUSR1 instead of SIGTERM: drain without racing idle clients.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable

from modelmux.server.handoff import HandoffError
from modelmux.server.listener import address_of, url_of

log = logging.getLogger("modelmux.workers")

READY_TIMEOUT = 60.0
FAST_EXIT = 1.0
MAX_BACKOFF = 5.0


async def _read_byte(fd: int, timeout: float) -> bytes:
    """One byte from a pipe, b"" on EOF or after ``timeout`` seconds, without blocking the loop."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[bytes] = loop.create_future()

    def readable() -> None:
        if not waiter.done():
            try:
                waiter.set_result(os.read(fd, 1))
            except OSError:
                waiter.set_result(b"")

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    try:
        return await asyncio.wait_for(waiter, timeout)
    except TimeoutError:
        return b""
    finally:
        loop.remove_reader(fd)


class Worker:
    """One worker process and its pipes."""

    def __init__(self, slot: int) -> None:
        self.slot = slot
        self.proc: asyncio.subprocess.Process | None = None
        self.lifeline: int | None = None
        self.started = 0.0
        self.fast_failures = 0


class Supervisor:
    """Starts, watches, restarts and stops the worker processes."""

    def __init__(self, sockets: list[socket.socket], count: int, worker_args: list[str],
                 drain_timeout: float) -> None:
        self.sockets = sockets
        self.count = count
        self.worker_args = worker_args
        self.drain_timeout = drain_timeout
        self.workers = [Worker(slot) for slot in range(count)]
        self.stopping = False
        self.on_ready: Callable[[], Awaitable[None]] | None = None
        self.stop_signal = signal.SIGTERM
        self._stop = asyncio.Event()
        self._watchers: set[asyncio.Task[None]] = set()

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit code."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            started = await asyncio.gather(*(self._start(w) for w in self.workers), return_exceptions=True)
            if not all(ok is True for ok in started):
                log.error("not every worker became ready; stopping")
                await self._stop_all()
                return 1
            log.info("%d workers ready (pids %s)", self.count,
                     ", ".join(str(w.proc.pid) for w in self.workers if w.proc))
            if self.on_ready is not None:
                try:
                    await self.on_ready()
                except HandoffError as exc:
                    log.error("upgrade: %s; stopping", exc)
                    self.stopping = True
                    await self._stop_all()
                    return 1
            for sock in self.sockets:
                log.info("listening on %s", url_of(*address_of(sock)))
            for worker in self.workers:
                self._watch(worker)
            await self._stop.wait()
            log.info("%s %d workers: they drain in-flight requests",
                     "handed over; retiring" if self.stop_signal == signal.SIGUSR1 else "stopping",
                     self.count)
            await self._stop_all()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
                signal.signal(sig, signal.SIG_IGN)
            for task in self._watchers:
                task.cancel()
            for sock in self.sockets:
                sock.close()
        log.info("stopped")
        return 0

    def reload_workers(self) -> int:
        """Send SIGHUP to every running worker (each reloads itself); returns how many."""
        count = 0
        for worker in self.workers:
            if worker.proc is not None and worker.proc.returncode is None:
                worker.proc.send_signal(signal.SIGHUP)
                count += 1
        return count

    def hand_over(self) -> None:
        """An upgrade's successor serves now: retire the workers (SIGUSR1) and exit."""
        self.stop_signal = signal.SIGUSR1
        self._on_signal(signal.SIGTERM)

    def _on_signal(self, sig: int) -> None:
        if self.stopping:  # a second signal: pass it on so workers cut their drain short
            for worker in self.workers:
                if worker.proc is not None and worker.proc.returncode is None:
                    worker.proc.send_signal(sig)
            return
        self.stopping = True
        self._stop.set()

    async def _start(self, worker: Worker) -> bool:
        ready_r, ready_w = os.pipe()
        life_r, life_w = os.pipe()
        fds = [sock.fileno() for sock in self.sockets]
        for fd in fds:
            os.set_inheritable(fd, True)
        args = [
            sys.executable, "-m", "modelmux", "serve", *self.worker_args,
            "--listen-fds", ",".join(map(str, fds)),
            "--ready-fd", str(ready_w), "--lifeline-fd", str(life_r),
        ]
        try:
            worker.proc = await asyncio.create_subprocess_exec(
                *args, pass_fds=[*fds, ready_w, life_r], stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # a terminal's Ctrl-C reaches the supervisor only
            )
        finally:
            os.close(ready_w)
            os.close(life_r)
        worker.lifeline = life_w
        worker.started = time.monotonic()
        try:
            ready = await _read_byte(ready_r, READY_TIMEOUT)
        finally:
            os.close(ready_r)
        if ready != b"1":
            log.error("worker %d (pid %d) did not become ready", worker.slot, worker.proc.pid)
            return False
        return True

    def _watch(self, worker: Worker) -> None:
        task = asyncio.get_running_loop().create_task(self._supervise(worker))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _supervise(self, worker: Worker) -> None:
        while not self.stopping:
            assert worker.proc is not None
            code = await worker.proc.wait()
            self._close_lifeline(worker)
            if self.stopping:
                return
            lived = time.monotonic() - worker.started
            worker.fast_failures = worker.fast_failures + 1 if lived < FAST_EXIT else 0
            delay = min(MAX_BACKOFF, 0.1 * 2 ** worker.fast_failures) if worker.fast_failures else 0.0
            log.warning("worker %d (pid %d) exited with %s after %.1fs; restarting in %.1fs",
                        worker.slot, worker.proc.pid, code, lived, delay)
            if delay:
                await asyncio.sleep(delay)
            if self.stopping:
                return
            if await self._start(worker):
                log.info("worker %d restarted (pid %d)", worker.slot, worker.proc.pid)

    async def _stop_all(self) -> None:
        running = [w for w in self.workers if w.proc is not None and w.proc.returncode is None]
        for worker in running:
            assert worker.proc is not None
            worker.proc.send_signal(self.stop_signal)
        waits = [w.proc.wait() for w in running if w.proc is not None]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), self.drain_timeout + 10.0)
        except TimeoutError:
            for worker in running:
                if worker.proc is not None and worker.proc.returncode is None:
                    log.warning("worker %d did not stop in time; killing it", worker.slot)
                    worker.proc.kill()
                    await worker.proc.wait()
        for worker in self.workers:
            self._close_lifeline(worker)

    @staticmethod
    def _close_lifeline(worker: Worker) -> None:
        if worker.lifeline is not None:
            os.close(worker.lifeline)
            worker.lifeline = None
