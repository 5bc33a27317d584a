"""Memory over a million proxied requests: is the proxy's RSS flat after warm-up?

Run: ``python benchmarks/soak_memory.py [--requests 1000000] [--warmup 100000]``. nginx serves
ModelMux's mock JSON answer as a static body (CPU 1); ``modelmux serve`` proxies to it as an
``openai_compatible`` provider (CPU 0, access log off like nginx's); h2load (``--h1``, 32
connections, CPU 1) sends the warm-up, then the measured run, while VmRSS of the proxy is read
from ``/proc/PID/status`` every ``--every`` seconds. Prints the samples and the verdict. Not a
pytest test. Needs nginx and h2load (Debian's nginx and nghttp2-client).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import nginx  # noqa: E402
from modelmux.bench.local import ServeProcess  # noqa: E402


def vm(pid: int, field: str) -> int:
    """``VmRSS`` / ``VmHWM`` of ``pid`` in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def h2load(url: str, requests: int, body: Path) -> str:
    cmd = ["taskset", "-c", "1", "h2load", "--h1", "-n", str(requests), "-c", "32", "-d",
           str(body), "-H", "content-type: application/json", url]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=3600)
    summary = [line for line in done.stdout.splitlines() if line.startswith(("finished", "requests:"))]
    return "; ".join(summary) or done.stdout[-400:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--warmup", type=int, default=100_000)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between RSS samples")
    ns = parser.parse_args()
    if nginx.binary() is None or shutil.which("h2load") is None:
        print("needs nginx and h2load (apt-get install -y nginx nghttp2-client)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="modelmux-soak-") as name:
        tmp = Path(name)
        answer, _ = nginx.capture_bodies(tmp)
        port = nginx.free_port()
        mock = nginx.start("soak", nginx.mock_servers([(port, "application/json", "a.json",
                                                                answer)], tmp),
                           [port], tmp, ["taskset", "-c", "1"])
        if isinstance(mock, str):
            print(mock, file=sys.stderr)
            return 1
        config = ('[server]\nhost = "127.0.0.1"\nport = 0\n\n'
                  '[logging]\nlevel = "info"\naccess_log = false\n\n'
                  '[[provider]]\nname = "json"\ntype = "openai_compatible"\nmodels = ["mock"]\n'
                  f'base_url = "http://127.0.0.1:{port}/v1"\n')
        proxy = ServeProcess("proxy", config, tmp, cpus={0})
        body = tmp / "body.json"
        body.write_text(json.dumps({"model": "mock",
                                    "messages": [{"role": "user", "content": "Hello?"}]}))
        url = f"{proxy.url}/v1/chat/completions"
        try:
            pid = proxy.proc.pid
            print(f"warm-up: {h2load(url, ns.warmup, body)}")
            samples: list[tuple[float, int]] = [(0.0, vm(pid, "VmRSS"))]
            stop = threading.Event()
            start = time.monotonic()

            def sample() -> None:
                while not stop.wait(ns.every):
                    samples.append((time.monotonic() - start, vm(pid, "VmRSS")))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            result = h2load(url, ns.requests, body)
            stop.set()
            sampler.join()
            samples.append((time.monotonic() - start, vm(pid, "VmRSS")))
            print(f"run: {result}")
            print("VmRSS kB over the run: " + ", ".join(f"{t:.0f}s {kb}" for t, kb in samples))
            first, last = samples[0][1], samples[-1][1]
            print(f"after warm-up {first} kB, at the end {last} kB ({last - first:+d} kB), "
                  f"VmHWM {vm(pid, 'VmHWM')} kB")
        finally:
            proxy.stop()
            mock.terminate()
            mock.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
