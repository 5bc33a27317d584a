"""``modelmux`` entry point: parses arguments and dispatches to a command.

A bare ``modelmux`` serves, as 1.x did, so existing service units keep working.
"""

from __future__ import annotations

import argparse
import sys

from modelmux import __version__, _accel


def version_line() -> str:
    return f"modelmux {__version__} ({_accel.implementation()})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelmux",
        description="ModelMux: one OpenAI-compatible front door for many model providers.",
        epilog="Examples:\n  modelmux serve\n  modelmux serve --config ./config.toml --port 8080",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-V", "--version", action="version", version=version_line())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the gateway (the default command)",
        description="Run the gateway. With no config file anywhere it serves one mock model on "
        "127.0.0.1:3000.",
        epilog="Examples:\n  modelmux serve\n  modelmux serve --config /etc/modelmux/config.toml\n"
        "  modelmux serve --host 0.0.0.0 --port 8080\n"
        "  modelmux serve --workers 4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_serve_arguments(serve)
    return parser


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE", help="config file (default: search the usual places)")
    parser.add_argument("--host", help="address to listen on (overrides [server] host)")
    parser.add_argument("--port", type=int, help="port to listen on; 0 picks a free one")
    parser.add_argument("-w", "--workers", type=int, metavar="N",
                        help="worker processes sharing the listening socket (overrides [server] workers)")
    for internal in ("--listen-fds", "--ready-fd", "--lifeline-fd"):  # set by the supervisor
        parser.add_argument(internal, help=argparse.SUPPRESS,
                            type=str if internal == "--listen-fds" else int)
    parser.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto",
                        help="event loop: uvloop when installed (auto), or force one")
    parser.add_argument("--log-level", choices=["trace", "debug", "info", "warn", "error"],
                        help="log level (overrides [logging] level)")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not args or args[0].startswith("-") and args[0] not in ("-h", "--help", "-V", "--version"):
        args = ["serve", *args]
    ns = parser.parse_args(args)
    if ns.command == "serve":
        from modelmux.cli.serve import run

        return run(ns)
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
