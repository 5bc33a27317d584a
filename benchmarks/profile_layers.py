"""Where a proxied request's CPU goes, by layer: py-spy samples of ``modelmux serve`` under load.

Run: ``python benchmarks/profile_layers.py [--stream] [--duration 10] [--rate 500]``.
The layout is ``macro.py``'s: the nginx mock on CPU 1, the proxy (``macro.py``'s config) on
CPU 0, ``modelmux bench -c 32`` on CPU 1. While the load runs, ``py-spy record --nonblocking``
samples the proxy and the proxy's CPU time is read from ``/proc``. Each sample is charged to
its innermost Python frame's layer (``modelmux/server``, ``modelmux/api``, ...); code without
a Python frame of its own (Cython, msgspec, uvloop, system calls) is charged to the Python
function that called it, and the event loop's own C code (epoll, reads, callbacks) to
``event loop``. Prints the share and the µs per request of each layer and the top functions.
Needs py-spy (``pip install py-spy``) and nginx. Not a pytest test.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import macro, nginx  # noqa: E402
from modelmux.bench.local import ServeProcess  # noqa: E402

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")
LOOP_ENTRY = {"run", "run_forever", "run_until_complete", "_run_once"}


def layer_of(path: str, func: str) -> str:
    """The layer a frame belongs to: ``modelmux/<folder>``, a package name, or the loop."""
    found = re.search(r"modelmux/(?:(\w+)/)?(\w+)\.py$", path)
    if found:
        return found.group(1) or found.group(2)
    if (re.search(r"asyncio/(runners|base_events)\.py$", path)
            and func.rpartition(".")[2] in LOOP_ENTRY):
        return "event loop"
    for package in ("asyncio", "h11", "h2", "hpack", "msgspec", "uvloop"):
        if f"/{package}/" in path:
            return package
    return "other"


def charge(raw: str) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    """Samples by layer and by function (innermost frame) from py-spy's raw output."""
    layers: collections.Counter[str] = collections.Counter()
    funcs: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = FRAME.match(stack.rsplit(";", 1)[-1])
        if leaf is None:
            continue
        path, func = leaf["file"], leaf["func"]
        layer = layer_of(path, func)
        layers[layer] += int(count)
        short = re.sub(r"^.*(modelmux/|site-packages/|python3\.\d+/)", "", path)
        funcs[f"{func} ({short})"] += int(count)
        total += int(count)
    return layers, funcs, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stream", action="store_true", help="100-chunk streams (mock-stream)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds sampled")
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--http1", choices=macro.BACKENDS, default="fast")
    parser.add_argument("--top", type=int, default=20, help="functions listed")
    parser.add_argument("--blocking", action="store_true",
                        help="pause the proxy for each sample (whole stacks, but the pauses "
                             "skew the shares towards system calls)")
    ns = parser.parse_args()
    if not shutil.which("py-spy") or nginx.binary() is None:
        print("needs py-spy and nginx (pip install py-spy; apt-get install -y nginx)",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="modelmux-prof-") as name:
        tmp = Path(name)
        procs: list[subprocess.Popen[bytes]] = []
        servers: list[ServeProcess] = []
        load: subprocess.Popen[str] | None = None
        try:
            upstream = macro.start_upstream(tmp, argparse.Namespace(modelmux_mock=False), [],
                                            procs, servers)
            proxy = ServeProcess("proxy", macro.proxy_config(upstream, ns.http1), tmp,
                                 {macro.PROXY_CPU})
            servers.append(proxy)
            model = ["--stream", "--model", "mock-stream"] if ns.stream else ["--no-stream"]
            load = subprocess.Popen(
                [*macro.pin(macro.LOAD_CPU), sys.executable, "-m", "modelmux", "bench", "--url",
                 proxy.url, "-c", "32", "--duration", str(ns.duration + 3), "--warmup", "0",
                 "--json", *model], stdout=subprocess.PIPE, text=True)
            time.sleep(1.5)  # connections open and warm
            out = tmp / "raw.txt"
            cpu_before, wall_before = macro.cpu_seconds(proxy.pid), time.monotonic()
            subprocess.run([*macro.pin(macro.LOAD_CPU), "py-spy", "record", "--pid",
                            str(proxy.pid), "--format", "raw", "--full-filenames", "--rate",
                            str(ns.rate), *([] if ns.blocking else ["--nonblocking"]),
                            "--duration", str(int(ns.duration)), "-o", str(out)],
                           check=True, capture_output=True)
            cpu = macro.cpu_seconds(proxy.pid) - cpu_before
            wall = time.monotonic() - wall_before
            report, _ = load.communicate(timeout=ns.duration + 60)
            run = json.loads(report)["runs"]["url"]
            rate = run["req_per_s"]
            if run["errors"]["total"]:
                print(f"warning: {run['errors']} during the run", file=sys.stderr)
            layers, funcs, total = charge(out.read_text())
        finally:
            if load is not None and load.poll() is None:
                load.kill()
                load.wait(10)
            macro.stop_all(procs, servers)
    per_request = cpu / (rate * wall) * 1e6  # µs of proxy CPU a request (or a stream)
    unit = "stream" if ns.stream else "request"
    print(f"{rate:,.0f} {unit}s/s; proxy CPU {cpu / wall * 100:.0f} % of a core, "
          f"{per_request:.1f} µs a {unit}; {total:,} samples")
    print(f"\n{'layer':<16}{'share':>8}{'µs/' + unit:>14}")
    for layer, count in layers.most_common():
        print(f"{layer:<16}{count / total:>8.1%}{count / total * per_request:>14.1f}")
    print(f"\ntop {ns.top} functions (self, with the code they call that has no Python frame)")
    for func, count in funcs.most_common(ns.top):
        print(f"{count / total:>7.1%} {count / total * per_request:>7.1f} µs  {func}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
