"""Building every provider once before serving, so settings only a provider checks (a region
name, a readable credentials file, an ``${ENV}`` in a default) count as configuration problems.

Building does no I/O beyond reading credentials files; nothing is connected or minted here.
"""

from __future__ import annotations

from modelmux.config.layers import Origins, origin_of
from modelmux.config.problems import ConfigError, Problem
from modelmux.config.schema import Config


def provider_problems(config: Config, origins: Origins) -> list[Problem]:
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
