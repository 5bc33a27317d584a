"""``modelmux bench`` against wrk on the same proxy: alternating runs, pair by pair.

Run: ``python benchmarks/bench_vs_wrk.py [--pairs 8] [--duration 3] [--stream]``. The nginx static mock
(``benchmarks/nginx.py``) and the load generators run on CPU 1, ``modelmux serve`` as a proxy
(``macro.py``'s config, access log off) on CPU 0. Each pair is one wrk run
(``benchmarks/wrk_post.lua``, the body ``modelmux bench`` sends) and one ``modelmux bench``
run at concurrency 32 (non-stream, or with ``--stream`` the 100-chunk stream, whole
responses per second for wrk against streams per second for bench), back to back, in alternating order so that neither tool
always gets the warmer server. Prints each pair's req/s and ratio, and the median ratio.
Not a pytest test.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import macro, nginx  # noqa: E402
from modelmux.bench.local import ServeProcess  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    parser.add_argument("--stream", action="store_true", help="the 100-chunk stream workload")
    ns = parser.parse_args()
    if nginx.binary() is None or not shutil.which("wrk"):
        print("needs nginx and wrk (apt-get install -y nginx wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="modelmux-vs-wrk-") as name:
        tmp = Path(name)
        procs: list = []
        servers: list[ServeProcess] = []
        try:
            upstream = macro.start_upstream(tmp, argparse.Namespace(modelmux_mock=False), [],
                                            procs, servers)
            proxy = ServeProcess("proxy", macro.proxy_config(upstream, "fast"), tmp,
                                 {macro.PROXY_CPU})
            servers.append(proxy)
            runner = macro.Macro(ns.duration, "1s")
            kind = (["--stream", "--model", "mock-stream"] if ns.stream else ["--no-stream"])
            runner.bench(proxy.url, "--concurrency", "32", *kind)  # warm-up
            ratios = []
            for pair in range(ns.pairs):
                order = ("wrk", "bench") if pair % 2 == 0 else ("bench", "wrk")
                got: dict[str, float] = {}
                for tool in order:
                    if tool == "wrk":
                        stream = ("mock-stream", "100", "stream") if ns.stream else ()
                        got["wrk"] = runner.wrk(proxy.url, ns.duration, *stream) or 0.0
                    else:
                        result = runner.bench(proxy.url, "--concurrency", "32", *kind)
                        got["bench"] = result["streams_per_s" if ns.stream else "req_per_s"]
                ratio = got["bench"] / got["wrk"] if got["wrk"] else float("nan")
                ratios.append(ratio)
                unit = "streams/s" if ns.stream else "req/s"
                print(f"pair {pair + 1} ({' then '.join(order)}): wrk {got['wrk']:,.0f} {unit}, "
                      f"modelmux bench {got['bench']:,.0f} {unit}, ratio {ratio:.3f}", flush=True)
            print(f"median ratio {statistics.median(ratios):.3f}, range "
                  f"{min(ratios):.3f}-{max(ratios):.3f} over {len(ratios)} pairs")
            print("\n".join(["", "Commands:", *dict.fromkeys(runner.commands)]))
        finally:
            macro.stop_all(procs, servers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
