"""``modelmux tui``: a terminal dashboard over a gateway's admin event stream and admin API.

Textual (the optional ``tui`` extra) draws three views that fit 80×24: the live overview,
the providers with their breakers (``b`` opens or closes the selected one's, admin only) and
the recent errors. Every figure comes from ``/admin/events`` and every change is an admin API
call, as on the web dashboard. Strings from the gateway are shown as plain text, never as
markup.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

KEY_ENV = "MODELMUX_MASTER_KEY"
EPILOG = f"""EXAMPLES:
  modelmux tui                                 the gateway on 127.0.0.1:3000
  {KEY_ENV}=... modelmux tui --url https://gw.example:8443

KEYS:
  1 2 3 4 overview, providers, errors, spend   b  open/close the selected breaker (admin)
  r       reconnect                        q   quit
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "tui", help="watch a gateway in the terminal (needs the `tui` extra)", epilog=EPILOG,
        description="A terminal dashboard: live traffic, providers and breakers, recent errors, "
                    "top teams and keys by spend. "
                    f"The admin key comes from ${KEY_ENV} (or --key); with none, a loopback "
                    "gateway that has no key configured is watched as admin.")
    parser.add_argument("--url", default="http://127.0.0.1:3000",
                        help="the gateway's base URL (default: http://127.0.0.1:3000)")
    parser.add_argument("--key", help=f"admin or viewer key (default: ${KEY_ENV}); prefer the "
                                      "variable: a flag shows in the process list")


def run(ns: argparse.Namespace) -> int:
    from modelmux.cli.admin_client import AdminClient, AdminError  # not at parser build time

    try:
        from modelmux.cli.tui_app import GatewayApp
    except ImportError:
        print("modelmux tui needs Textual: pip install 'modelmux[tui]'", file=sys.stderr)
        return 1
    client = AdminClient(ns.url, ns.key or os.environ.get(KEY_ENV) or None)
    try:
        client.connect()
    except AdminError as exc:
        print(f"modelmux tui: {exc}", file=sys.stderr)
        return 1
    GatewayApp(client).run()
    return 0
