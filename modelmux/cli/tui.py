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
import time
from collections import deque
from typing import Any

from modelmux.cli.admin_client import AdminClient, AdminError

KEY_ENV = "MODELMUX_MASTER_KEY"
MAX_ERRORS = 200
SPARK_POINTS = 60
EPILOG = f"""EXAMPLES:
  modelmux tui                                 the gateway on 127.0.0.1:3000
  {KEY_ENV}=... modelmux tui --url https://gw.example:8443

KEYS:
  1 2 3   overview, providers, errors     b   open/close the selected breaker (admin)
  r       reconnect                        q   quit
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "tui", help="watch a gateway in the terminal (needs the `tui` extra)", epilog=EPILOG,
        description="A terminal dashboard: live traffic, providers and breakers, recent errors. "
                    f"The admin key comes from ${KEY_ENV} (or --key); with none, a loopback "
                    "gateway that has no key configured is watched as admin.")
    parser.add_argument("--url", default="http://127.0.0.1:3000",
                        help="the gateway's base URL (default: http://127.0.0.1:3000)")
    parser.add_argument("--key", help=f"admin or viewer key (default: ${KEY_ENV}); prefer the "
                                      "variable: a flag shows in the process list")


def run(ns: argparse.Namespace) -> int:
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


class Recent:
    """What the views keep between snapshots: a short rate history and the recent errors."""

    def __init__(self) -> None:
        self.rates: deque[float] = deque(maxlen=SPARK_POINTS)
        self.errors: deque[tuple[str, str, int]] = deque(maxlen=MAX_ERRORS)

    def add(self, snap: dict[str, Any], now: float | None = None) -> None:
        """Remember ``snap``'s rate and any errors it reports."""
        self.rates.append(float(snap.get("requests_per_s") or 0.0))
        stamp = time.strftime("%H:%M:%S", time.localtime(now))
        for status, count in (snap.get("errors") or {}).items():
            self.errors.appendleft((stamp, f"HTTP {status}", int(count)))
        for code, count in (snap.get("upstream_errors") or {}).items():
            self.errors.appendleft((stamp, f"upstream {code}", int(count)))


def _num(value: Any, digits: int = 1) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def overview_lines(snap: dict[str, Any]) -> list[str]:
    """The overview's figures as lines of plain text."""
    latency, overhead = snap.get("latency_ms") or {}, snap.get("overhead_ms") or {}
    tokens = snap.get("tokens_per_s") or {}
    cache = snap.get("cache")
    return [
        f"requests      {snap.get('requests_total', 0)}",
        f"requests/s    {_num(snap.get('requests_per_s'), 2)}",
        f"in flight     {snap.get('in_flight', 0)}",
        f"latency ms    p50 {_num(latency.get('p50'))}   p99 {_num(latency.get('p99'))}",
        f"overhead ms   p50 {_num(overhead.get('p50'), 2)}   p99 {_num(overhead.get('p99'), 2)}",
        f"tokens/s      in {_num(tokens.get('input'))}   out {_num(tokens.get('output'))}",
        f"cache hits    {_num(cache['hit_ratio'] * 100) + ' %' if cache else 'no cache'}",
    ]


def deployment_rows(snap: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per deployment: id, breaker, in flight, TTFT, rpm, tpm."""
    rows = []
    for ident, view in sorted((snap.get("deployments") or {}).items()):
        breaker = view.get("breaker") or {}
        state = str(breaker.get("state", "?")) + (" (held)" if breaker.get("pinned") else "")
        limits = view.get("limits") or {}
        rows.append((ident, state, str(view.get("in_flight", 0)), _num(view.get("ewma_ttft_ms")),
                     str(limits.get("rpm") or "–"), str(limits.get("tpm") or "–")))
    return rows
