"""``modelmux serve``: load the config, listen, serve until SIGTERM/SIGINT, drain, exit 0.

Exit codes: 0 after a clean shutdown, 1 when the server cannot start (e.g. the port is taken),
2 when the configuration is invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
from pathlib import Path

from modelmux import __version__, _accel
from modelmux.api.app import App
from modelmux.cli.preflight import provider_problems
from modelmux.config.load import ConfigError, LoadedConfig, Override, candidate_paths, load_config
from modelmux.config.schema import Config
from modelmux.observability import logs
from modelmux.server.lifecycle import Server
from modelmux.server.listener import bind_sockets, url_of
from modelmux.server.workers import Supervisor

log = logging.getLogger("modelmux")


async def _until_stopped(app: App, server: Server, lifeline_fd: int | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or the supervisor's lifeline closes), drain, and clean up."""
    app.ready = True
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if lifeline_fd is not None:
        loop.add_reader(lifeline_fd, _check_lifeline, lifeline_fd, stop)
    try:
        await stop.wait()
        log.info("shutting down: no new connections; draining in-flight requests")
        for sig in (signal.SIGTERM, signal.SIGINT):  # a second signal cuts the drain short
            loop.add_signal_handler(sig, _force, server)
        await server.shutdown()
    finally:
        if lifeline_fd is not None:
            loop.remove_reader(lifeline_fd)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)  # the rest of the exit is not interruptible
        await app.aclose()
    log.info("stopped")
    return 0


def _check_lifeline(fd: int, stop: asyncio.Event) -> None:
    try:
        data = os.read(fd, 64)
    except BlockingIOError:
        return
    except OSError:
        data = b""
    if not data:
        log.warning("supervisor is gone; shutting down")
        asyncio.get_running_loop().remove_reader(fd)
        stop.set()


async def serve(config: Config, host: str, port: int) -> int:
    """Run one server process until a stop signal; returns the exit code."""
    app = App(config)
    server = Server(app, config.server.limits())
    try:
        addresses = await server.listen(host, port)
    except OSError as exc:
        log.error("cannot listen on %s: %s", url_of(host, port), exc.strerror or exc)
        await app.aclose()
        return 1
    for bound_host, bound_port in addresses:
        log.info("listening on %s", url_of(bound_host, bound_port))
    return await _until_stopped(app, server)


async def serve_worker(config: Config, fds: list[int], ready_fd: int, lifeline_fd: int) -> int:
    """A worker under ``--workers``: serve on inherited sockets, report ready, stop with the rest."""
    app = App(config)
    server = Server(app, config.server.limits())
    for fd in fds:
        await server.adopt(socket.socket(fileno=fd))
    os.write(ready_fd, b"1")
    os.close(ready_fd)
    os.set_blocking(lifeline_fd, False)
    log.info("worker serving")
    return await _until_stopped(app, server, lifeline_fd)


async def supervise(config: Config, host: str, port: int, workers: int, worker_args: list[str]) -> int:
    try:
        sockets = bind_sockets(host, port)
    except OSError as exc:
        log.error("cannot listen on %s: %s", url_of(host, port), exc.strerror or exc)
        return 1
    supervisor = Supervisor(sockets, workers, worker_args, config.server.drain_timeout)
    return await supervisor.run()


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


def overrides(ns: argparse.Namespace) -> list[Override]:
    """The serve flags as the command-line config layer."""
    flags = [("host", ("server", "host"), "--host"), ("port", ("server", "port"), "--port"),
             ("workers", ("server", "workers"), "--workers"),
             ("log_level", ("logging", "level"), "--log-level")]
    return [(path, getattr(ns, name), flag) for name, path, flag in flags
            if getattr(ns, name) is not None]


def _load(ns: argparse.Namespace) -> LoadedConfig | None:
    """The validated config (providers built once as a check), or None after logging why not."""
    try:
        loaded = load_config(Path(ns.config) if ns.config else None, overrides=overrides(ns))
        problems = provider_problems(loaded.config, loaded.origins)
        if problems:
            raise ConfigError.from_problems(problems)
    except ConfigError as exc:
        logs.setup("info")
        log.error("invalid configuration: %s", exc)
        for warning in exc.warnings:
            log.warning("%s", warning.render())
        return None
    return loaded


def run(ns: argparse.Namespace) -> int:
    loaded = _load(ns)
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
    log.info("implementation: %s", _accel.implementation())
    if ns.listen_fds:
        fds = [int(fd) for fd in ns.listen_fds.split(",")]
        return _run(lambda: serve_worker(config, fds, ns.ready_fd, ns.lifeline_fd), ns.loop)
    host, port, workers = config.server.host, config.server.port, config.server.workers
    if workers > 1:
        worker_args = [*(["--config", str(ns.config)] if ns.config else []), "--loop", ns.loop,
                       *(["--log-level", ns.log_level] if ns.log_level else [])]
        return asyncio.run(supervise(config, host, port, workers, worker_args))
    return _run(lambda: serve(config, host, port), ns.loop)
