"""``modelmux db upgrade``: apply the database's pending schema migrations and print versions.

The server applies them at start as well; this runs the step alone (before a rolling upgrade,
or to check a DSN). The store is ``[auth]``'s unless ``--store``, ``--sqlite-path`` or
``--postgres-dsn`` say otherwise. ``add_store_options`` and ``store_overrides`` are shared
with the other commands that can reach the store directly.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from modelmux.cli.common import FAILED, INVALID, OK, add_config_option, load_or_report
from modelmux.config.features import AuthConfig
from modelmux.config.load import Override
from modelmux.config.paths import state_dir
from modelmux.config.problems import ConfigError, KeyPath
from modelmux.config.state import hide_password
from modelmux.spend.schema import SPEND
from modelmux.tenancy.migrations import Applied, Component
from modelmux.tenancy.open import describe_store, open_store

STORE_UNUSED: tuple[KeyPath, ...] = (("auth", "master_key"),)
"""Settings a command that works on the store directly never reads: their ``${VAR}`` (the
server's ``MODELMUX_MASTER_KEY``) need not be set where it runs."""
COMPONENTS: tuple[Component, ...] = (SPEND,)
"""Schemas besides tenancy's that share the database; each part with tables adds its own."""

EPILOG = """EXAMPLES:
  modelmux db upgrade                        the store [auth] names (default: SQLite in the state dir)
  modelmux db upgrade --sqlite-path ./modelmux.db
  MODELMUX_AUTH_POSTGRES_DSN=postgresql://modelmux@db/modelmux modelmux db upgrade --store postgres

Exit codes: 0 up to date (migrated or already), 1 the database cannot be reached or a migration
failed (nothing of that component is changed), 2 invalid configuration or usage."""


def add_parser(commands: Any) -> None:
    db = commands.add_parser("db", help="the database that keeps keys, teams and users",
                             description="Manage the tenancy database ([auth] store).")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", title="ACTIONS",
                                required=True)
    upgrade = actions.add_parser(
        "upgrade", help="apply pending schema migrations and print each component's version",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Apply every pending schema migration, one transaction per component, and "
                    "print each component's version before and after. Safe to run again, and "
                    "while servers are running.")
    add_store_options(upgrade)
    add_config_option(upgrade)


def add_store_options(parser: argparse.ArgumentParser) -> None:
    """``--store``, ``--sqlite-path``, ``--postgres-dsn``: ``[auth]``'s keys, as flags."""
    parser.add_argument("--store", choices=["sqlite", "postgres"],
                        help="which store (overrides [auth] store)")
    parser.add_argument("--sqlite-path", metavar="PATH",
                        help="the SQLite file (overrides [auth] sqlite_path)")
    parser.add_argument("--postgres-dsn", metavar="DSN",
                        help="postgresql://user@host/db (overrides [auth] postgres_dsn; "
                             "prefer MODELMUX_AUTH_POSTGRES_DSN for a DSN with a password)")


def store_overrides(ns: argparse.Namespace) -> list[Override]:
    """The store flags as the command-line config layer."""
    flags = [("store", "--store"), ("sqlite_path", "--sqlite-path"),
             ("postgres_dsn", "--postgres-dsn")]
    return [(("auth", name), getattr(ns, name), flag) for name, flag in flags
            if getattr(ns, name, None) is not None]


def render(applied: list[Applied]) -> list[str]:
    """One line per component: its version, and what this run changed."""
    lines = []
    for step in applied:
        if step.after != step.before:
            lines.append(f"{step.component}: version {step.before} -> {step.after}")
        else:
            lines.append(f"{step.component}: version {step.after} (up to date)")
    return lines


async def upgrade(auth: AuthConfig) -> list[Applied]:
    """Open the store (which migrates), close it, and return what was applied.

    Raises:
        ConfigError, OSError, and the driver's errors: the store cannot be opened.
    """
    store = open_store(auth, state_dir(), components=COMPONENTS)
    await store.open()
    try:
        applied: list[Applied] = getattr(store, "applied", [])
        return applied
    finally:
        await store.close()


def run(ns: argparse.Namespace) -> int:
    loaded = load_or_report(ns.config, store_overrides(ns), unused=STORE_UNUSED)
    if loaded is None:
        return INVALID
    auth = loaded.config.auth
    try:
        where = describe_store(auth, state_dir())
    except ConfigError as exc:
        print(f"modelmux: {exc}", file=sys.stderr)
        return INVALID
    print(f"store: {where}")
    try:
        applied = asyncio.run(upgrade(auth))
    except ConfigError as exc:
        print(f"modelmux: {exc}", file=sys.stderr)
        return INVALID
    except Exception as exc:  # noqa: BLE001 - any driver error ends the command with its text
        said = str(exc)
        if auth.postgres_dsn:  # a driver may quote the DSN it was given
            said = said.replace(auth.postgres_dsn, hide_password(auth.postgres_dsn))
        print(f"modelmux: cannot upgrade {where}: {type(exc).__name__}: {said}", file=sys.stderr)
        return FAILED
    for line in render(applied):
        print(line)
    return OK
