"""``modelmux reload``: ask a running server to re-read and apply its configuration.

It talks to the server's control socket and prints what the server answered: the changed
settings and, on lines of their own, the listening settings that need a restart (exit code 0:
the rest is applied); or every problem that made it keep the old configuration (exit code 1).
SIGHUP to the server process does the same without the report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from modelmux.server import control

EPILOG = """EXAMPLES:
  modelmux reload
  modelmux reload --control-socket /run/modelmux/control.sock
  kill -HUP $(pidof modelmux)          # the same, without the report
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "reload", help="re-read and apply the configuration of a running server", epilog=EPILOG,
        description="Re-read every config layer in the running server, validate it, and swap it in "
                    "without dropping requests. Listening settings (host, port, workers, TLS on "
                    "or off) are not applied: the answer lists them as \"needs a restart\". Exit "
                    "code 0 when applied, 1 when rejected or no server answers.")
    add_control_socket_argument(parser)


def add_control_socket_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--control-socket", metavar="PATH",
                        help="the server's control socket (default: the first of $XDG_RUNTIME_DIR/modelmux/, "
                             "/run/modelmux/ and ~/.local/state/modelmux/ that has one)")


def ask(ns: argparse.Namespace, command: str, timeout: float = 60.0) -> int:
    """Send ``command`` to the server's control socket and print its answer; the exit code."""
    path = Path(ns.control_socket) if ns.control_socket else control.find_socket()
    try:
        ok, message = control.send(path, command, timeout=timeout)
    except OSError as exc:
        print(f"modelmux: no server answers on {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def run(ns: argparse.Namespace) -> int:
    return ask(ns, "reload")
