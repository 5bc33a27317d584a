"""``modelmux serve``: load the config, listen, serve until SIGTERM/SIGINT, drain, exit 0.

Exit codes: 0 after a clean shutdown, 1 when the server cannot start (e.g. the port is taken),
2 when the configuration is invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from modelmux import __version__, _accel
from modelmux.api.app import App
from modelmux.config.load import ConfigError, candidate_paths, load
from modelmux.config.schema import Config
from modelmux.observability import logs
from modelmux.server.lifecycle import Server

log = logging.getLogger("modelmux")


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def serve(config: Config, host: str, port: int) -> int:
    """Run one server process until a stop signal; returns the exit code."""
    app = App(config)
    server = Server(app, config.server.limits())
    try:
        addresses = await server.listen(host, port)
    except OSError as exc:
        log.error("cannot listen on %s: %s", _url(host, port), exc.strerror or exc)
        await app.aclose()
        return 1
    app.ready = True
    for bound_host, bound_port in addresses:
        log.info("listening on %s", _url(bound_host, bound_port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("shutting down: no new connections; draining in-flight requests")
        for sig in (signal.SIGTERM, signal.SIGINT):  # a second signal cuts the drain short
            loop.add_signal_handler(sig, _force, server)
        await server.shutdown()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)  # the rest of the exit is not interruptible
        await app.aclose()
    log.info("stopped")
    return 0


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


def run(ns: argparse.Namespace) -> int:
    try:
        config, path = load(Path(ns.config) if ns.config else None)
    except ConfigError as exc:
        logs.setup("info")
        log.error("invalid configuration: %s", exc)
        return 2
    logs.setup(ns.log_level or config.logging.level)
    if path is None:
        looked = ", ".join(str(p) for p in candidate_paths())
        log.info("no config file found (looked in %s): serving the built-in mock model `mock`; "
                 "run `modelmux config init` to set up real providers", looked)
    else:
        log.info("modelmux %s using config %s", __version__, path)
    log.info("implementation: %s", _accel.implementation())
    host = ns.host or config.server.host
    port = config.server.port if ns.port is None else ns.port
    return _run(lambda: serve(config, host, port), ns.loop)
