"""``modelmux upgrade``: replace a running server by a new process without dropping a request.

It asks the server over its control socket to start a successor (the same command line, so
newly installed code) and hand it the listening sockets; it prints who serves now, or why the
successor failed and the old process kept serving (exit code 1). See docs/operations.md.
"""

from __future__ import annotations

import argparse
from typing import Any

from modelmux.cli.reload import add_control_socket_argument, ask

EPILOG = """EXAMPLES:
  modelmux upgrade
  modelmux upgrade --control-socket /run/modelmux/control.sock --timeout 120
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "upgrade", help="hand a running server's sockets to a freshly started one (zero downtime)",
        epilog=EPILOG,
        description="The running server starts a new process with its own command line, passes it "
                    "the listening sockets, and once that one serves it stops accepting and drains "
                    "its in-flight requests. Exit code 0 when the new process took over, 1 when it "
                    "failed (the old one keeps serving) or no server answers.")
    add_control_socket_argument(parser)
    parser.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                        help="how long the new process may take to become ready (default 60)")


def run(ns: argparse.Namespace) -> int:
    return ask(ns, f"upgrade {ns.timeout:g}", timeout=ns.timeout + 60.0)
