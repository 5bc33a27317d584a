"""``modelmux serve``: load the config, listen, serve until SIGTERM/SIGINT, drain, exit 0.

With ``--upgrade-from`` (set by ``modelmux upgrade``) it takes its listening sockets, control
socket and pid file over from the running server instead of binding (``server/handoff.py``).
Exit codes: 0 after a clean shutdown, 1 when the server cannot start (e.g. the port is taken),
2 when the configuration is invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from modelmux import __version__, _accel
from modelmux.api.app import App
from modelmux.cli.cache import cache_command, workers_cache
from modelmux.cli.reloader import Reloader, needs_restart
from modelmux.cli.running import Running, Stopping
from modelmux.cli.serve_config import load_checked, load_for_host, load_or_explain
from modelmux.cli.upgrader import Upgrader
from modelmux.config.load import ConfigError, candidate_paths
from modelmux.config.schema import Config
from modelmux.observability import logs
from modelmux.observability.shared import SharedMetrics, worker_directory
from modelmux.server.control import ControlServer
from modelmux.server.handoff import HandoffError, Takeover
from modelmux.server.lifecycle import Server
from modelmux.server.listener import address_of, bind_sockets, url_of
from modelmux.server.tls import server_context
from modelmux.server.workers import Supervisor

log = logging.getLogger("modelmux")


async def _until_stopped(reloader: Reloader, server: Server, stopping: Stopping,
                         tasks: set[asyncio.Task[object]], lifeline_fd: int | None = None,
                         control: ControlServer | None = None) -> int:
    """Serve until SIGTERM/SIGINT, a hand-over (or the supervisor's lifeline closes), drain, clean up.

    SIGHUP reloads the configuration (as ``modelmux reload`` does over the control socket); a
    worker takes SIGUSR1 from its supervisor as "an upgrade took over: drain gracefully". The
    caller has already called ``_handle_signals`` (``tasks`` are its reloads), before it said
    it was ready.
    """
    reloader.app.ready = True
    loop = asyncio.get_running_loop()
    if lifeline_fd is not None:
        loop.add_signal_handler(signal.SIGUSR1, stopping.hand_over)
        loop.add_reader(lifeline_fd, _check_lifeline, lifeline_fd, stopping)
    try:
        await stopping.event.wait()
        log.info("%s: no new connections; draining in-flight requests",
                 "handed over" if stopping.handover else "shutting down")
        loop.remove_signal_handler(signal.SIGHUP)
        if control is not None:
            await control.close()
        for sig in (signal.SIGTERM, signal.SIGINT):  # a second signal cuts the drain short
            loop.add_signal_handler(sig, _force, server)
        reloader.app.events.close()  # admin event streams never end on their own
        await server.shutdown(handover=stopping.handover)
    finally:
        if lifeline_fd is not None:
            loop.remove_reader(lifeline_fd)
            loop.remove_signal_handler(signal.SIGUSR1)
        loop.remove_signal_handler(signal.SIGHUP)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)  # the rest of the exit is not interruptible
        if control is not None:
            await control.close()
        for task in list(tasks):
            await task
        await reloader.aclose()
    log.info("stopped")
    return 0


def _spawn(tasks: set[asyncio.Task[object]], job: Callable[[], Awaitable[object]]) -> None:
    """Run ``job`` in the background, keeping a strong reference until it is done."""
    task = asyncio.get_running_loop().create_task(job())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def _warn_if_moved(config: Config, addresses: list[tuple[str, int]]) -> None:
    """A successor serves on the sockets it was handed, whatever ``host``/``port`` say now."""
    host, port = config.server.host, config.server.port
    try:  # a name (localhost) may resolve to several addresses: only a literal one is compared
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    bound = [ipaddress.ip_address(h) for h, _ in addresses]
    if (port and all(p != port for _, p in addresses)
            or literal is not None and not literal.is_unspecified and literal not in bound):
        log.warning("[server] host/port say %s, but an upgrade keeps the listening sockets it was "
                    "handed (%s): restart to move", url_of(host, port),
                    ", ".join(url_of(*address) for address in addresses))


def _check_lifeline(fd: int, stopping: Stopping) -> None:
    try:
        data = os.read(fd, 64)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:
        log.warning("supervisor is gone; shutting down")
        asyncio.get_running_loop().remove_reader(fd)
        stopping.now()


def _server(app: App, config: Config) -> Server:
    """The ``Server`` for ``[server]``: limits, HTTP/2 settings and TLS when configured.

    Raises:
        OSError / ssl.SSLError: the TLS certificate or key cannot be loaded.
    """
    tls = config.server.tls
    context = server_context(tls.cert_file, tls.key_file) if tls is not None else None
    return Server(app, config.server.limits(), ssl_context=context,
                  http2=config.server.http2.settings(), http1=config.server.http1)


async def serve(config: Config, host: str, port: int, ns: argparse.Namespace,
                takeover: Takeover | None = None) -> int:
    """Run one server process until a stop signal or a hand-over; returns the exit code."""
    app = App.serving(config)
    trouble = await app.open()
    if trouble is not None:
        if takeover is not None:
            takeover.fail(trouble)
        await app.aclose()
        return 1
    try:
        server = _server(app, config)
    except OSError as exc:  # ssl.SSLError is an OSError
        log.error("cannot load TLS certificate/key: %s", exc)
        if takeover is not None:
            takeover.fail(f"cannot load TLS certificate/key: {exc}")
        await app.aclose()
        return 1
    try:
        if takeover is None:
            addresses = await server.listen(host, port)
        else:
            for sock in takeover.sockets:
                await server.adopt(sock)
            addresses = [address_of(sock) for sock in takeover.sockets]
            _warn_if_moved(config, addresses)
    except OSError as exc:
        log.error("cannot listen on %s: %s", url_of(host, port), exc.strerror or exc)
        if takeover is not None:
            takeover.fail(f"cannot serve on the handed-over sockets: {exc}")
        await app.aclose()
        return 1
    reloader = Reloader(ns, server, app, load_checked)
    stopping = Stopping()
    tasks = _handle_signals(stopping, reloader.reload)
    upgrader = Upgrader(server.listening_fds, stopping.hand_over,
                        lambda: load_for_host(ns, config.server.host))
    running = Running(ns, {"reload": reloader.reload, "upgrade": upgrader.upgrade,
                           "cache": lambda arg: cache_command(reloader, arg)}, upgrader)
    app.ready = True
    freeze_start_up()
    try:
        await running.start(takeover)
    except HandoffError as exc:
        log.error("upgrade: %s; stopping", exc)
        await server.shutdown()
        await reloader.aclose()
        return 1
    scheme = "https" if config.server.tls is not None else "http"
    for bound_host, bound_port in addresses:
        log.info("listening on %s", url_of(bound_host, bound_port, scheme))
    try:
        return await _until_stopped(reloader, server, stopping, tasks, control=running.control)
    finally:
        await running.release()


async def serve_worker(config: Config, fds: list[int], ready_fd: int, lifeline_fd: int,
                       ns: argparse.Namespace) -> int:
    """A worker under ``--workers``: serve on inherited sockets, report ready, stop with the rest."""
    app = App.serving(config)
    if await app.open() is not None:
        await app.aclose()
        return 1
    if getattr(ns, "metrics_dir", None):  # /metrics answers with every worker's totals
        app.metrics.shared = SharedMetrics(ns.metrics_dir)
    server = _server(app, config)
    for fd in fds:
        await server.adopt(socket.socket(fileno=fd))
    freeze_start_up()
    reloader, stopping = Reloader(ns, server, app, load_checked), Stopping()
    tasks = _handle_signals(stopping, reloader.reload)
    os.write(ready_fd, b"1")
    os.close(ready_fd)
    os.set_blocking(lifeline_fd, False)
    log.info("worker serving")
    return await _until_stopped(reloader, server, stopping, tasks, lifeline_fd)


async def supervise(config: Config, host: str, port: int, workers: int, worker_args: list[str],
                    ns: argparse.Namespace, takeover: Takeover | None = None) -> int:
    """Run the ``--workers`` supervisor on bound (or handed-over) sockets; returns the exit code."""
    if takeover is not None:
        sockets = takeover.sockets
        _warn_if_moved(config, [address_of(sock) for sock in sockets])
    else:
        try:
            sockets = bind_sockets(host, port)
        except OSError as exc:
            log.error("cannot listen on %s: %s", url_of(host, port), exc.strerror or exc)
            return 1
    supervisor = Supervisor(sockets, workers, worker_args, config.server.drain_timeout)

    async def reload_all(arg: str = "") -> tuple[bool, str]:
        """Validate here first, so an invalid config is reported once and no worker sees it."""
        try:
            loaded = load_for_host(ns, config.server.host)
        except ConfigError as exc:
            exc.log(log, "reload rejected; the running configuration stays")
            return False, f"reload rejected; the running configuration stays.\n{exc}"
        count = supervisor.reload_workers()
        summary = f"reloaded: the configuration is valid; {count} worker(s) are switching to it"
        return True, "\n".join([summary, *needs_restart(config, loaded.config)])

    upgrader = Upgrader(lambda: [sock.fileno() for sock in sockets], supervisor.hand_over,
                        lambda: load_for_host(ns, config.server.host))
    running = Running(ns, {"reload": reload_all, "upgrade": upgrader.upgrade,
                           "cache": workers_cache}, upgrader)
    supervisor.on_ready = lambda: running.start(takeover)
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[object]] = set()
    loop.add_signal_handler(signal.SIGHUP, _spawn, tasks, reload_all)
    try:
        code = await supervisor.run()
        if code and takeover is not None:  # tell the old server, which then keeps serving
            takeover.fail("not every worker became ready")
        return code
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        await running.release()


def _handle_signals(stopping: Stopping, reload: Callable[[], Awaitable[object]]
                    ) -> set[asyncio.Task[object]]:
    """SIGTERM/SIGINT stop gracefully, SIGHUP reloads; returns the set that holds the reloads'
    tasks. Done before readiness is announced, so a signal sent as soon as the server says it
    listens is handled instead of killing the process by its default action."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.now)
    tasks: set[asyncio.Task[object]] = set()
    loop.add_signal_handler(signal.SIGHUP, _spawn, tasks, reload)
    return tasks


def _force(server: Server) -> None:
    log.warning("second stop signal: cutting %d connection(s) now", len(server.connections))
    server.abort_all()


def _run(coro_factory: object, loop_kind: str) -> int:
    coro = coro_factory()  # type: ignore[operator]
    if loop_kind != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop_kind == "uvloop":
                raise
        else:
            return uvloop.run(coro)  # type: ignore[no-any-return]
    return asyncio.run(coro)


def _takeover(ns: argparse.Namespace) -> Takeover | None:
    """With ``--upgrade-from``: the sockets from the running server (None when not upgrading).

    Raises:
        HandoffError: the running server did not hand them over.
    """
    return Takeover.connect(Path(ns.upgrade_from)) if ns.upgrade_from else None


GC_THRESHOLDS = (20_000, 20, 20)
"""Allocations between young collections (CPython's default is 700): a request allocates
hundreds of objects, almost all freed by reference counting, so the default ran a collection
every few requests for nothing."""


def freeze_start_up() -> None:
    """Hide what start-up built (modules, config, app) from the cyclic garbage collector.

    Those objects live as long as the process; without ``gc.freeze`` every full collection
    walks all of them again. Together with ``GC_THRESHOLDS`` this took about 6 % of a busy
    server's CPU per request (benchmarks/RESULTS.md). Cycles made later, reloaded configs
    included, are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(ns: argparse.Namespace) -> int:
    try:
        takeover = _takeover(ns)
    except HandoffError as exc:
        logs.setup("info")
        log.error("upgrade: %s", exc)
        return 1
    loaded = load_or_explain(ns, takeover)
    if loaded is None:
        return 2
    config = loaded.config
    trouble = logs.setup(config.logging.level, config.logging.format, config.logging.file)
    looked = ", ".join(str(p) for p in candidate_paths())
    if loaded.defaulted:
        log.info("no config file found (looked in %s): serving the built-in mock model `mock`; "
                 "run `modelmux config init` to set up real providers", looked)
    elif not loaded.files:
        log.info("modelmux %s: no config file found (looked in %s): using settings from the "
                 "environment", __version__, looked)
    else:
        log.info("modelmux %s using config %s", __version__, ", ".join(map(str, loaded.files)))
    if trouble:
        log.warning("%s", trouble)
    if not ns.listen_fds:  # workers load the same config; the supervisor already said this
        for note in loaded.notes:
            log.info("%s", note)
        for warning in loaded.warnings:
            log.warning("%s", warning.render())
    log.info("implementation: %s; HTTP/1.1 backend: %s", _accel.implementation(),
             config.server.http1)
    if ns.listen_fds:
        fds = [int(fd) for fd in ns.listen_fds.split(",")]
        return _run(lambda: serve_worker(config, fds, ns.ready_fd, ns.lifeline_fd, ns), ns.loop)
    host, port, workers = config.server.host, config.server.port, config.server.workers
    if workers > 1:
        worker_args = [*(["--config", str(ns.config)] if ns.config else []), "--loop", ns.loop,
                       "--workers", str(workers),  # local limits: 1/workers each
                       *(["--log-level", ns.log_level] if ns.log_level else [])]
        with worker_directory() as metrics_dir:
            worker_args += ["--metrics-dir", metrics_dir]
            return asyncio.run(supervise(config, host, port, workers, worker_args, ns, takeover))
    return _run(lambda: serve(config, host, port, ns, takeover), ns.loop)
