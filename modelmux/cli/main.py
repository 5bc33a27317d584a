"""``modelmux`` entry point: builds the argument parser and dispatches to a command module.

A bare ``modelmux`` (or one starting with a serve flag) serves, as 1.x did, so existing service
units keep working. Each command module offers ``add_parser(commands)`` and ``run(ns)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from modelmux import __version__, _accel
from modelmux.cli.common import Parser

COMMANDS = {
    "serve": "modelmux.cli.serve",
    "config": "modelmux.cli.config_cmd",
    "validate": "modelmux.cli.config_cmd",
    "doctor": "modelmux.cli.doctor",
    "logs": "modelmux.cli.logs",
    "reload": "modelmux.cli.reload",
    "cache": "modelmux.cli.cache",
    "upgrade": "modelmux.cli.upgrade",
    "bench": "modelmux.cli.bench",
    "tui": "modelmux.cli.tui",
    "prices": "modelmux.cli.prices",
    "usage": "modelmux.cli.usage",
    "keys": "modelmux.cli.tenancy_cmd",
    "teams": "modelmux.cli.tenancy_cmd",
    "users": "modelmux.cli.tenancy_cmd",
    "db": "modelmux.cli.db",
}

DESCRIPTION = f"""ModelMux {__version__}: one OpenAI-compatible front door for many model providers
(Vertex AI Claude, Anthropic, OpenAI-compatible servers). With no command, ModelMux serves."""

EPILOG = """CONFIGURATION:
  Layers, highest first: command-line flags, MODELMUX_<SECTION>_<KEY> environment variables,
  the user file $XDG_CONFIG_HOME/modelmux/config.toml (default ~/.config/modelmux/config.toml),
  the system file /etc/modelmux/config.toml, then defaults. `--config FILE` replaces both files.
  Start with `modelmux config init`; see `modelmux config --help`.

ENVIRONMENT VARIABLES:
  MODELMUX_SERVER_PORT, MODELMUX_SERVER_HOST, MODELMUX_LOGGING_LEVEL, MODELMUX_STREAMING_MODE, ...
                          any scalar setting as MODELMUX_<SECTION>_<KEY> (above the files)
  MODELMUX_AUTH_SERVICE_ACCOUNT_FILE / _JSON
                          1.x names: the Vertex service account (deprecated, still honoured)
  PORT, HOST, LOG_LEVEL, STREAMING_MODE
                          1.x names (deprecated): used when no file sets the key
  LLM_PROVIDER, LLM_URL, LLM_MODEL_DISPLAY_NAME, VERTEX_PROJECT, VERTEX_REGION, VERTEX_LOCATION,
  VERTEX_PUBLISHER, VERTEX_MODEL_ID, GCP_SERVICE_ACCOUNT_KEY (base64 JSON)
                          1.x Vertex settings (deprecated): `modelmux config migrate` folds them in
  MODELMUX_PURE_PYTHON=1  use the pure-Python twins of the native modules
  MODELMUX_REQUIRE_NATIVE=1
                          fail when the native build is missing (not with MODELMUX_PURE_PYTHON=1:
                          both at once is an error)
  VISUAL, EDITOR          the editor `modelmux config edit` opens

EXAMPLES:
  modelmux                          serve (same as `modelmux serve`)
  modelmux serve --port 8080
  modelmux config init
  modelmux config show
  modelmux doctor
  modelmux logs -f
  modelmux keys create --name ci --team research

EXIT CODES:
  0 success, 1 failure (a doctor check, a refused overwrite, the port is taken),
  2 invalid configuration or invalid usage. See docs/cli.md.

For more information, visit: https://github.com/yarenty/modelmux"""

SERVE_EPILOG = """EXAMPLES:
  modelmux serve
  modelmux serve --config /etc/modelmux/config.toml
  modelmux serve --host 0.0.0.0 --port 8080
  modelmux serve --workers 4
  MODELMUX_LOGGING_LEVEL=debug modelmux serve"""


def version_line() -> str:
    return f"modelmux {__version__} ({_accel.implementation()})"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="modelmux", usage="%(prog)s [COMMAND] [OPTIONS]",
                    description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("-V", "--version", action="version", version=version_line(),
                        help="print the version and whether the native build is active")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="COMMANDS",
                                     parser_class=Parser, prog="modelmux")
    serve = commands.add_parser(
        "serve", help="run the gateway (the default command)", epilog=SERVE_EPILOG,
        description="Run the gateway. With no config file anywhere it serves one mock model on "
        "127.0.0.1:3000. Flags override every other configuration layer.")
    add_serve_arguments(serve)
    for module in dict.fromkeys(COMMANDS.values()):
        if module != "modelmux.cli.serve":
            importlib.import_module(module).add_parser(commands)
    return parser


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE",
                        help="config file; replaces the user and system files")
    parser.add_argument("--host", help="address to listen on (overrides [server] host)")
    parser.add_argument("--port", type=int, help="port to listen on; 0 picks a free one")
    parser.add_argument("-w", "--workers", type=int, metavar="N",
                        help="worker processes sharing the listening socket (overrides [server] workers)")
    internal: dict[str, type] = {"--listen-fds": str, "--ready-fd": int, "--lifeline-fd": int,
                                 "--metrics-dir": str}
    for flag, kind in internal.items():  # set by the supervisor for its workers
        parser.add_argument(flag, help=argparse.SUPPRESS, type=kind)
    parser.add_argument("--upgrade-from", help=argparse.SUPPRESS)  # set by `modelmux upgrade`
    parser.add_argument("--control-socket", metavar="PATH",
                        help="unix socket for `modelmux reload` and `modelmux upgrade` (default: "
                             "under $XDG_RUNTIME_DIR or /run/modelmux); 'off' disables it")
    parser.add_argument("--pid-file", metavar="PATH",
                        help="write the server's pid here (an upgrade rewrites it with the new pid)")
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
    module = COMMANDS.get(ns.command or "")
    if module is None:
        parser.print_help()
        return 2
    if _accel.conflict() and ns.command != "doctor":  # doctor reports it among its checks
        print(f"modelmux: {_accel.conflict()}", file=sys.stderr)
        return 2
    result: int = importlib.import_module(module).run(ns)
    return result


if __name__ == "__main__":
    sys.exit(main())
