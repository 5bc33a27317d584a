"""``modelmux cache stats|clear``: the response cache of a running server, through its
control socket (as ``modelmux reload``)."""

from __future__ import annotations

import argparse
from typing import Any

from modelmux.cli.reload import add_control_socket_argument, ask

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
