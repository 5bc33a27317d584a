"""Instructions per proxied request: ``modelmux serve`` under callgrind against the nginx mock.

Run: ``python benchmarks/callgrind_proxy.py [--http1 fast] [--requests 1000] [--streams 200]``.
The proxy (``benchmarks/macro.py``'s config) runs under ``valgrind --tool=callgrind``; after
200 warm-up requests the counters are zeroed (``callgrind_control -z``), N requests go through
at concurrency 8 (``modelmux bench``), and the dump (``callgrind_control -d``) gives the
user-space instructions of the whole proxy process, divided by N. Deterministic enough to
compare commits on a shared machine. Not a pytest test.
"""

from __future__ import annotations

import argparse
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

WARMUP = 200


def bench(url: str, requests: int, stream: bool) -> None:
    """``modelmux bench`` with an exact request count; raises if any request failed."""
    cmd = [sys.executable, "-m", "modelmux", "bench", "--url", url, "--requests", str(requests),
           "--warmup", "0", "--concurrency", "8", "--json",
           *(["--stream", "--model", "mock-stream"] if stream else ["--no-stream"])]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    try:
        errors = json.loads(done.stdout)["runs"]["url"]["errors"]["total"]
    except (ValueError, KeyError) as exc:
        raise RuntimeError(f"bench failed: {done.stderr[-400:]}") from exc
    if errors:
        raise RuntimeError(f"{errors} of {requests} requests failed: " + json.dumps(json.loads(done.stdout)["runs"]["url"]["errors"])[:600])


def dump_total(tmp: Path, pid: int, before: set[Path]) -> int:
    """Dump the counters of callgrind ``pid`` and return the instructions of the new dump."""
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = set(tmp.glob(f"callgrind.out.{pid}*")) - before
        for path in new:
            found = re.search(r"^(?:summary|totals): (\d+)", path.read_text(errors="replace"), re.M)
            if found:
                return int(found.group(1))
        time.sleep(0.5)
    raise RuntimeError("no callgrind dump appeared")


def measure(tmp: Path, upstream: macro.Upstream, http1: str, requests: int,
            streams: int, access_log: bool = False) -> dict[str, float]:
    """Instructions per non-stream request and per 100-chunk stream for one backend;
    ``access_log`` turns the access log on, as the default config has it."""
    config = tmp / f"proxy-{http1}.toml"
    port = nginx.free_port()
    text = macro.proxy_config(upstream, http1).replace("port = 0", f"port = {port}")
    if access_log:
        text = text.replace("access_log = false", "access_log = true")
    config.write_text(text)
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", sys.executable, "-m", "modelmux",
                             "serve", "--config", str(config)], cwd=tmp,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    out: dict[str, float] = {}
    try:
        nginx.wait_port(port, timeout=120)
        for name, count, stream in (("non-stream", requests, False), ("stream", streams, True)):
            bench(url, WARMUP, stream)
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True,
                           capture_output=True)
            before = set(tmp.glob(f"callgrind.out.{proc.pid}*"))
            bench(url, count, stream)
            out[name] = dump_total(tmp, proc.pid, before) / count
    finally:
        proc.terminate()
        proc.wait(60)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http1", choices=macro.BACKENDS, action="append")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--access-log", action="store_true",
                        help="access log on (the default config; macro.py's turns it off)")
    ns = parser.parse_args()
    if not shutil.which("valgrind") or nginx.binary() is None:
        print("needs valgrind and nginx (apt-get install -y valgrind nginx)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="modelmux-cg-") as name:
        tmp = Path(name)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            upstream = macro.start_upstream(tmp, argparse.Namespace(modelmux_mock=False), [],
                                            procs, [])
            for http1 in ns.http1 or macro.BACKENDS:
                counts = measure(tmp, upstream, http1, ns.requests, ns.streams, ns.access_log)
                print(f"http1={http1}: " + ", ".join(f"{k} {v:,.0f} instructions/request"
                                                     for k, v in counts.items()), flush=True)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
