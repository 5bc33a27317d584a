"""Instructions per access line, counted by callgrind (a figure that load on the machine does not move).

Run from the repository root: ``python benchmarks/callgrind_access.py [--lines 20000]``. For each
format (text, JSON) the script runs itself under ``valgrind --tool=callgrind`` twice: once logging
``--lines`` finished requests through ``AccessLog`` under ``logs.setup`` into a regular file,
inside a running event loop as the server does (the buffer written in 64 KiB writes and at the
end), and once logging none; the difference divided by ``--lines`` is the cost of one line.
``PYTHONHASHSEED=0`` keeps the two runs alike. ``MODELMUX_PURE_PYTHON=1`` measures the pure twin.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def child(fmt: str, count: int, out: str) -> None:
    """Log ``count`` lines into ``out`` as ``modelmux serve`` would."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.test_bench_access import Finished, finished_record
    from modelmux.observability import logs
    from modelmux.observability.access import AccessLog

    with open(out, "w", encoding="utf-8") as stream:
        saved, sys.stderr = sys.stderr, stream
        try:
            logs.setup("info", fmt)
        finally:
            sys.stderr = saved
        log, record, exchange = AccessLog(), finished_record(), Finished()

        async def burst() -> None:
            for _ in range(count):
                log.log(record, exchange, 2_315_402_000)

        asyncio.run(burst())
        for handler in logging.getLogger("modelmux").handlers:
            handler.flush()


def instructions(fmt: str, count: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "access.log")
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
             sys.executable, __file__, "--child", fmt, str(count), out],
            env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True,
            check=True, cwd=ROOT)
        written = Path(out).read_text(encoding="utf-8").count("\n")
        if written != count:
            raise SystemExit(f"{fmt}: {written} lines written, {count} expected")
    match = REFS.search(run.stderr)
    if match is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{run.stderr[-2000:]}")
    return int(match.group(1).replace(",", ""))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    args = parser.parse_args()
    for fmt in ("text", "json"):
        empty, full = instructions(fmt, 0), instructions(fmt, args.lines)
        print(f"{fmt}: {(full - empty) / args.lines:,.0f} instructions per line "
              f"({full:,} - {empty:,} over {args.lines:,} lines)")


if __name__ == "__main__":
    main()
