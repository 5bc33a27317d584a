"""Hot reload inside a serving process: re-read every config layer, validate, swap the App.

In-flight requests finish on the App they started with; new requests get the new one, which
keeps the live routing state of unchanged deployments (so limits hold across the drain), and the
old App closes its upstream connections once its requests are done (or ``drain_timeout``
passes). The ``[server.tls]`` certificate and key are loaded again, for new connections. An
invalid config (an unreadable certificate included) is rejected with every problem and the old
one keeps serving; so is one that would serve without authentication on the address the
process listens on (``auth_problems`` against that host, not the file's). Listening settings (host, port, workers, TLS on or off) need a restart or
``modelmux upgrade``; every reload names those that differ from what the process listens with.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import re
import ssl
import time
from collections.abc import Callable
from typing import Any

import msgspec

from modelmux.api.app import App
from modelmux.cli.preflight import auth_problems
from modelmux.config.layers import origin_of
from modelmux.config.load import LoadedConfig
from modelmux.config.problems import ConfigError, Problem
from modelmux.config.schema import Config
from modelmux.pipeline.admit import carry_admission
from modelmux.server.lifecycle import Server
from modelmux.server.tls import server_context

log = logging.getLogger("modelmux.reload")

_SECRET = re.compile(r"(key|secret|token|password|credentials|authorization|headers\.)",
                     re.IGNORECASE)  # any header value may carry a credential
_RESTART = "needs a restart"
_RESTART_OR_UPGRADE = "needs a restart or `modelmux upgrade`"


def tls_context(loaded: LoadedConfig) -> ssl.SSLContext | None:
    """A server context from ``[server.tls]`` as configured now (None without TLS).

    Raises:
        ConfigError: the certificate or key cannot be read or do not match.
    """
    tls = loaded.config.server.tls
    if tls is None:
        return None
    try:
        return server_context(tls.cert_file, tls.key_file)
    except OSError as exc:  # ssl.SSLError is an OSError
        path = ("server", "tls", "cert_file")
        problem = Problem(f"cannot load the certificate {tls.cert_file} with key {tls.key_file}: {exc}",
                          path, origin_of(loaded.origins, path))
        raise ConfigError.from_problems([problem]) from exc


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"server.port": 3000, "provider[0].name": "m", ...}`` for a decoded config."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{index}]"))
        return out
    return {prefix: value}


def changes(old: Config, new: Config) -> list[str]:
    """One line per changed setting, secrets redacted."""
    before, after = flatten(msgspec.to_builtins(old)), flatten(msgspec.to_builtins(new))
    lines = []
    for key in sorted(before.keys() | after.keys()):
        if before.get(key, "<unset>") == after.get(key, "<unset>"):
            continue
        if _SECRET.search(key):
            lines.append(f"{key}: (secret changed)")
        else:
            lines.append(f"{key}: {before.get(key, '<unset>')!r} -> {after.get(key, '<unset>')!r}")
    return lines


def needs_restart(serving: Config, new: Config) -> list[str]:
    """The listening settings ``new`` sets differently from ``serving`` (what the process
    listens with), one line per remedy: ``needs a restart: server.port (3000 -> 3001)``."""
    was, now = serving.server, new.server
    found: dict[str, list[str]] = {_RESTART: [], _RESTART_OR_UPGRADE: []}
    for remedy, key, before, after in (
            (_RESTART, "host", repr(was.host), repr(now.host)),
            (_RESTART, "port", str(was.port), str(now.port)),
            (_RESTART_OR_UPGRADE, "workers", str(was.workers), str(now.workers)),
            (_RESTART_OR_UPGRADE, "tls", "on" if was.tls else "off", "on" if now.tls else "off")):
        if before != after:
            found[remedy].append(f"server.{key} ({before} -> {after})")
    return [f"{remedy}: {', '.join(keys)}" for remedy, keys in found.items() if keys]


def unchanged_deployments(old: App, new: App) -> list[str]:
    """The deployments ``new`` serves exactly as ``old`` did: same provider settings, same
    weight, prices, tags and limits. Their live routing state carries over a reload."""
    before = {p.name: p for p in old.config.provider}
    after = {p.name: p for p in new.config.provider}
    out = []
    for ident, spec in new.models.specs.items():
        was = old.models.specs.get(ident)
        name = spec.provider.name
        if was is None or before.get(name) != after.get(name):
            continue
        if dataclasses.replace(was, provider=spec.provider) == spec:
            out.append(ident)
    return out


class Reloader:
    """Owns the serving App of one process and replaces it on request."""

    def __init__(self, ns: argparse.Namespace, server: Server, app: App,
                 load: Callable[[argparse.Namespace], LoadedConfig]) -> None:
        self.ns = ns
        self.server = server
        self.app = app
        self.load = load
        self.listening = app.config  # what the sockets were opened with; a reload cannot change it
        self._retiring: set[asyncio.Task[None]] = set()
        app.reload = self.reload

    def _record(self, app: App, ok: bool, text: str) -> None:
        """What the admin API shows as the last reload."""
        app.last_reload = {"ok": ok, "at": time.time(), "result": text,
                           "restart": needs_restart(self.listening, app.config) if ok else []}

    async def reload(self, arg: str = "") -> tuple[bool, str]:
        """Validate the config as it is now and switch to it; returns (ok, what happened)."""
        try:
            loaded = self.load(self.ns)
            refused = auth_problems(loaded.config, loaded.origins, self.listening.server.host)
            if refused:
                raise ConfigError.from_problems(refused)
            context = tls_context(loaded)
            app = App(loaded.config, metrics=self.app.metrics, budget=self.app.pool.budget,
                      overrides=self.app.overrides, events=self.app.events,
                      session_seed=self.app.access.seed)
        except ConfigError as exc:
            exc.log(log, "reload rejected; the running configuration stays")
            text = f"reload rejected; the running configuration stays.\n{exc}"
            self._record(self.app, False, text)
            self.app.events.deployments = self.app.router.snapshot
            return False, text
        old = self.app
        app.started_at = old.started_at  # uptime is the process's, not the configuration's
        carried = app.router.adopt(old.router, unchanged_deployments(old, app))
        for ident in app.overrides.pinned_open():  # a breaker made afresh by a policy change
            if ident in app.router.live:
                app.router.force(ident, "open")
        app.reload = self.reload
        carry_admission(old.pipeline, app.pipeline)
        if app.cache is not None and old.cache is not None:
            app.cache.adopt(old.cache)
        if app.spend is not None and old.spend is not None:
            app.spend.adopt(old.spend)  # budget counters live on across the reload
        lines = changes(old.config, loaded.config)
        app.ready = True
        if context is not None and self.server.tls is not None:
            self.server.tls.replace(context)
        self.server.limits = loaded.config.server.limits()
        self.server.http2 = loaded.config.server.http2.settings()  # read per new connection
        self.server.handler = app
        self.app = app
        task = asyncio.get_running_loop().create_task(old.retire(old.config.server.drain_timeout))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        summary = f"reloaded: {len(lines)} setting(s) changed" if lines else "reloaded: no changes"
        if context is not None and self.server.tls is not None:
            summary += "; TLS certificate loaded again for new connections"
        if any(line.startswith("server.http2.") for line in lines):
            summary += "; HTTP/2 settings apply to new connections"
        log.info("%s", summary)
        if carried:
            log.info("  routing state (breakers, limits, in flight, TTFT) kept for %d unchanged "
                     "deployment(s)", len(carried))
        for line in lines:
            log.info("  %s", line)
        restart = needs_restart(self.listening, loaded.config)
        for line in restart:
            log.warning("not applied: %s", line)
        text = "\n".join([summary, *lines, *restart])
        self._record(app, True, text)
        return True, text

    async def aclose(self) -> None:
        """Close the serving App and wait for retiring ones."""
        for task in list(self._retiring):
            await task
        await self.app.aclose()
