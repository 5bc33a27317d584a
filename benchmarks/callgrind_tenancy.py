"""Instructions per request of authentication and the key's limit check, counted by callgrind
(a figure that load on the machine does not move).

Run from the repository root: ``python benchmarks/callgrind_tenancy.py [--requests 2000]``.
For each scenario of ``test_bench_tenancy.py`` (auth off, a cached key without limits, with
rpm and tpm, the "busy" key) the script runs itself under ``valgrind --tool=callgrind`` twice,
once with 1,000 requests and once with 1,000 + ``--requests``, through the same pipeline frame
as the benchmark; the difference divided by ``--requests`` is the cost of one request, set-up
and warm-up left out. ``PYTHONHASHSEED=0`` keeps the runs alike. Under callgrind a request
takes long enough for the buckets to refill in between, so the busy key's counts change as a
caller's in steady use would (its ``remaining`` is reformatted every request), not as fast.
``MODELMUX_PURE_PYTHON=1`` measures the pure twins.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFS = re.compile(r"I\s+refs:\s+([\d,]+)")
BASE = 1000
SCENARIOS = ("off", "plain", "limited", "busy")


def child(scenario: str, count: int) -> None:
    """Run ``count`` requests of ``scenario`` as one benchmark round does."""
    sys.path.insert(0, str(ROOT))
    from benchmarks import test_bench_tenancy as bench
    from modelmux.config.features import AuthConfig
    from modelmux.pipeline.stage import Pipeline
    from modelmux.tenancy.authn import Authenticator
    from modelmux.tenancy.keys import generate_key
    from modelmux.tenancy.open import open_store
    from modelmux.tenancy.records import Key

    bench.REQUESTS = count
    if scenario == "off":
        one_round = bench._rounds(Pipeline([bench.Route()]), [])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            config = AuthConfig(mode="keys", master_key="sk-master-bench",
                                sqlite_path=f"{tmp}/bench.db", key_cache_seconds=3600)
            auth = Authenticator(config, open_store(config, Path(tmp)))
            new = generate_key()
            loop = asyncio.new_event_loop()
            loop.run_until_complete(auth.open())
            loop.run_until_complete(auth.store.create_key(
                Key(id=scenario, prefix=new.prefix, hash=new.hash, **bench.KEYS[scenario])))
            headers = [(b"authorization", b"Bearer " + new.secret.encode())]
            loop.run_until_complete(auth.identify(headers, "127.0.0.1:1"))  # now cached
            one_round = bench._rounds(bench._keyed(auth), headers)
    one_round()


def instructions(scenario: str, count: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
             sys.executable, __file__, "--child", scenario, str(count)],
            env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True, text=True,
            check=True, cwd=ROOT, timeout=900)
    found = REFS.search(run.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{run.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--scenario", action="append", choices=SCENARIOS,
                        help="measure only these (default: all; added costs are over the first)")
    parser.add_argument("--child", nargs=2, metavar=("SCENARIO", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    first: int | None = None
    for scenario in args.scenario or SCENARIOS:
        per = (instructions(scenario, BASE + args.requests)
               - instructions(scenario, BASE)) // args.requests
        added = "" if first is None else f"  ({per - first:+,})"
        first = per if first is None else first
        print(f"{scenario:8} {per:>8,} instructions per request{added}", flush=True)


if __name__ == "__main__":
    main()
