"""``modelmux prices [MODEL]``: the price that applies to a model, or the whole table.

It reads the effective configuration (``[[prices]]`` overrides) over the bundled table and prints
USD per million tokens with where each price came from; a model with no price says so (exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from modelmux.cli.common import add_config_option, load_or_report
from modelmux.spend.prices import Price, PriceTable

EPILOG = """EXAMPLES:
  modelmux prices                       every price, overrides first
  modelmux prices claude-sonnet-4@20250514
  modelmux prices gpt-4o --json
"""


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "prices", help="show the price that applies to a model", epilog=EPILOG,
        description="Show USD per million tokens (input, output, cached input, cache write) "
                    "from the config's [[prices]] over the bundled, dated table. Exit code 1 "
                    "when MODEL has no price (its cost is then reported as unknown).")
    parser.add_argument("model", nargs="?", help="an upstream model name")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_config_option(parser)


def _row(price: Price) -> dict[str, Any]:
    return {"model": price.model, "input_per_mtok": price.input,
            "output_per_mtok": price.output, "cached_input_per_mtok": price.cached_input,
            "cache_write_per_mtok": price.cache_write, "source": price.source}


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _print_table(rows: list[Price]) -> None:
    header = ("MODEL", "INPUT", "OUTPUT", "CACHED", "CACHE WRITE", "SOURCE")
    lines = [header] + [(p.model, _money(p.input), _money(p.output), _money(p.cached_input),
                         _money(p.cache_write), p.source) for p in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())


def run(ns: argparse.Namespace) -> int:
    loaded = load_or_report(ns.config, quiet=True)
    if loaded is None:
        return 2
    table = PriceTable(loaded.config.prices)
    if ns.model is None:
        rows = table.entries()
    else:
        found = table.lookup(ns.model)
        if found is None:
            print(f"modelmux: no price for model {ns.model!r}: its cost is reported as "
                  "unknown; add a [[prices]] entry", file=sys.stderr)
            return 1
        rows = [found]
    if ns.json:
        print(json.dumps({"as_of": table.as_of, "data": [_row(p) for p in rows]}, indent=2))
    else:
        if ns.model is not None and rows[0].model != ns.model:
            print(f"{ns.model} is priced as {rows[0].model}")
        _print_table(rows)
        print(f"(USD per million tokens; bundled prices as of {table.as_of})")
    return 0
