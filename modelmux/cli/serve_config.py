"""The configuration ``modelmux serve`` starts and reloads with: the serve flags as the
command-line layer over every other one, validated, each provider and plugin built once as a
check (``preflight``), and the TLS files read when a successor or reload depends on them;
a successor or reload is also checked against the host the process listens on.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from modelmux.cli.preflight import auth_problems, build_problems
from modelmux.cli.reloader import tls_context
from modelmux.config.load import ConfigError, LoadedConfig, Override, load_config
from modelmux.observability import logs
from modelmux.server.handoff import Takeover

log = logging.getLogger("modelmux")


def overrides(ns: argparse.Namespace) -> list[Override]:
    """The serve flags as the command-line config layer."""
    flags = [("host", ("server", "host"), "--host"), ("port", ("server", "port"), "--port"),
             ("workers", ("server", "workers"), "--workers"),
             ("log_level", ("logging", "level"), "--log-level")]
    return [(path, getattr(ns, name), flag) for name, path, flag in flags
            if getattr(ns, name) is not None]


def load_checked(ns: argparse.Namespace) -> LoadedConfig:
    """Every config layer for these flags, validated, with each provider built once as a check.

    Raises:
        ConfigError: every problem found.
    """
    loaded = load_config(Path(ns.config) if ns.config else None, overrides=overrides(ns))
    problems = build_problems(loaded.config, loaded.origins)
    if problems:
        raise ConfigError.from_problems(problems)
    return loaded


def load_validated(ns: argparse.Namespace) -> LoadedConfig:
    """The config as it is now, checked with its TLS files (before a successor starts, or
    before a supervisor tells its workers to reload).

    Raises:
        ConfigError: every problem found.
    """
    loaded = load_checked(ns)
    tls_context(loaded)
    return loaded


def load_for_host(ns: argparse.Namespace, host: str) -> LoadedConfig:
    """``load_validated``, with authentication checked against ``host``, the address the
    process listens on: a reload or an upgrade keeps the sockets, whatever the file says now.

    Raises:
        ConfigError: every problem found.
    """
    loaded = load_validated(ns)
    refused = auth_problems(loaded.config, loaded.origins, host)
    if refused:
        raise ConfigError.from_problems(refused)
    return loaded


def load_or_explain(ns: argparse.Namespace, takeover: Takeover | None) -> LoadedConfig | None:
    """The validated config, or None after logging (and telling the predecessor) why not."""
    try:
        return load_checked(ns)
    except ConfigError as exc:
        logs.setup("info")
        exc.log(log, "invalid configuration")
        for warning in exc.warnings:
            log.warning("%s", warning.render())
        if takeover is not None:
            takeover.fail(f"invalid configuration: {exc}")
        return None
