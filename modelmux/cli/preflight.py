"""Building every provider and middleware plugin once before serving, so settings only they
check (a region name, a readable credentials file, an ``${ENV}`` in a default, a plugin's
options) count as configuration problems.

Building does no I/O beyond reading credentials files; nothing is connected or minted here.
"""

from __future__ import annotations

import ipaddress

from modelmux.config.layers import ValueOrigins, origin_of
from modelmux.config.problems import ConfigError, Problem
from modelmux.config.schema import Config


def provider_problems(config: Config, origins: ValueOrigins) -> list[Problem]:
    """One problem per provider that cannot be built from its table."""
    from modelmux.providers.registry import build_provider
    from modelmux.upstream import ConnectionPool

    pool = ConnectionPool()
    problems = []
    for index, table in enumerate(config.provider):
        try:
            build_provider(table, pool)
        except ConfigError as exc:
            path = ("provider", index)
            message = str(exc).removeprefix(f"provider {table.name!r}: ")
            problems.append(Problem(message, path, origin_of(origins, path)))
    return problems


def middleware_problems(config: Config, origins: ValueOrigins) -> list[Problem]:
    """One problem per enabled ``[[middleware]]`` whose plugin cannot be built."""
    from modelmux.pipeline.plugins import build_middleware

    problems = []
    for index, table in enumerate(config.middleware):
        if not table.enabled:
            continue
        try:
            build_middleware(table)
        except ConfigError as exc:
            path = ("middleware", index)
            problems.append(Problem(str(exc), path, origin_of(origins, path)))
    return problems


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback address literals; any other name may be public."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_problems(config: Config, origins: ValueOrigins, host: str | None = None) -> list[Problem]:
    """Serving without authentication on an address other machines can reach is refused
    unless ``[auth] allow_unauthenticated`` says it is meant, and so is an empty master key
    (an environment variable set to nothing). ``host``: the address the process listens on,
    when it is not ``config``'s (a reload cannot move it)."""
    auth, host = config.auth, host or config.server.host
    if auth.mode == "keys" and auth.master_key == "":
        path = ("auth", "master_key")
        return [Problem("is empty, so the server would have no admin credential: set the "
                        "variable it comes from (MODELMUX_MASTER_KEY in the shipped configs) "
                        "to a long random string, or remove master_key", path,
                        origin_of(origins, path))]
    if auth.mode != "none" or auth.allow_unauthenticated or is_loopback(host):
        return []
    path = ("auth", "mode")
    serving = "" if host == config.server.host else (
        " (the address this server listens on: a new [server] host needs a restart)")
    return [Problem(f"refusing to serve without authentication on {host!r}{serving}, which "
                    "other machines may reach: set [auth] mode = \"keys\" (with master_key = "
                    "\"${MODELMUX_MASTER_KEY}\"), listen on 127.0.0.1, or set [auth] "
                    "allow_unauthenticated = true if an outer layer authenticates callers",
                    path, origin_of(origins, path))]


def build_problems(config: Config, origins: ValueOrigins) -> list[Problem]:
    """``provider_problems``, ``middleware_problems`` and ``auth_problems``: what serving would
    fail to build, or must not serve."""
    return (provider_problems(config, origins) + middleware_problems(config, origins)
            + auth_problems(config, origins))
