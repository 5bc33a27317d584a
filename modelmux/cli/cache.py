"""``modelmux cache stats|clear``: the response cache of a running server, through its
control socket (as ``modelmux reload``); and the server's side of that control command."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from modelmux.cli.reload import add_control_socket_argument, ask

if TYPE_CHECKING:
    from modelmux.cli.reloader import Reloader

EPILOG = """EXAMPLES:
  modelmux cache stats
  modelmux cache clear
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "cache", help="show or clear the response cache of a running server", epilog=EPILOG,
        description="Ask the running server (its control socket) for its response cache's "
                    "backend, entries and bytes, or drop every entry. Exit code 1 when the "
                    "cache is off or no server answers.")
    parser.add_argument("action", choices=("stats", "clear"))
    add_control_socket_argument(parser)


def run(ns: argparse.Namespace) -> int:
    return ask(ns, f"cache {ns.action}")


async def cache_command(reloader: Reloader, arg: str) -> tuple[bool, str]:
    """The control command ``cache stats|clear`` on the serving App's response cache."""
    cache = reloader.app.cache
    if cache is None:
        return False, "the response cache is off ([cache] enabled = false)"
    return await cache.command(arg.strip())


async def workers_cache(arg: str) -> tuple[bool, str]:
    """The same command under ``--workers``: the supervisor has no cache of its own."""
    return False, ("under --workers each worker keeps its own cache: use GET or DELETE "
                   "/admin/cache (with the Redis backend one DELETE clears every worker's)")
