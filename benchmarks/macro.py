"""The performance issue's macro table: ModelMux as a proxy against its mock upstream, and nginx.

Run: ``python benchmarks/macro.py [--duration 5]``. It starts the mock (``modelmux serve``, mock
provider, 100 chunks) on CPU 1, the ModelMux proxy (``openai_compatible`` provider) on CPU 0,
optionally nginx on CPU 0, and runs ``modelmux bench`` on CPU 1; it prints a markdown table
and the commands. Not a pytest test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from modelmux.bench.local import ServeProcess, StartError, mock_config, proxy_config
from modelmux.bench.procfs import tree_hwm, tree_rss

PROXY_CPU, LOAD_CPU = 0, 1
NGINX_CONF = """worker_processes 1;
master_process off;
daemon off;
error_log {tmp}/nginx-error.log warn;
pid {tmp}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream mock {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


def pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") else []


def machine() -> str:
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                      if line.startswith("Model name")), "")
    except OSError:
        pass
    from modelmux import __version__, _accel

    return (f"{os.cpu_count()} CPUs ({model or 'unknown model'}), Python {sys.version.split()[0]}, "
            f"modelmux {__version__} ({_accel.implementation()})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise StartError(f"nothing listens on port {port} after {timeout} s")


def start_nginx(tmp: Path, upstream: int) -> tuple[subprocess.Popen[bytes], str] | str:
    """nginx as a plain reverse proxy on CPU 0; the process and URL, or why it is not there."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        return "nginx is not installed (apt-get install -y nginx)"
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, upstream=upstream, port=port))
    proc = subprocess.Popen([*pin(PROXY_CPU), binary, "-p", str(tmp), "-c", str(conf)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
    except StartError as exc:
        proc.kill()
        proc.wait()
        return str(exc)
    return proc, f"http://127.0.0.1:{port}"


class Macro:
    """Runs ``modelmux bench`` pinned to the load CPU and keeps each command for the report."""

    def __init__(self, duration: float, warmup: str) -> None:
        self.duration = duration
        self.warmup = warmup
        self.commands: list[str] = []

    def bench(self, url: str, *args: str, pid: int | None = None) -> dict[str, Any]:
        cmd = [*pin(LOAD_CPU), sys.executable, "-m", "modelmux", "bench", "--url", url,
               "--duration", str(self.duration), "--warmup", self.warmup, *args, "--json"]
        if pid is not None:
            cmd += ["--pid", str(pid)]
        self.commands.append(" ".join(cmd).replace(sys.executable, "python"))
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.duration * 4 + 60,
                              check=False)
        if not done.stdout:
            raise RuntimeError(f"bench failed: {done.stderr}")
        result: dict[str, Any] = json.loads(done.stdout)["runs"]["url"]
        return result

    def wrk(self, url: str, seconds: float) -> float | None:
        """wrk's Requests/sec on the same body (the generator cross-check), None without wrk."""
        if not shutil.which("wrk"):
            return None
        script = Path(__file__).with_name("wrk_post.lua")
        cmd = [*pin(LOAD_CPU), "wrk", "-t1", "-c32", f"-d{seconds:g}s", "-s", str(script),
               url + "/v1/chat/completions"]
        self.commands.append(" ".join(cmd))
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30,
                             check=False).stdout
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
        return float(found.group(1)) if found else None


def fmt(value: float | None, unit: str = "", digits: int = 0, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:{'+' if sign else ''}.{digits}f}{unit}"


def mib(n: int | None) -> str:
    return "n/a" if not n else f"{n / 1048576:.1f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    parser.add_argument("--warmup", default="1s", help="warmup per run (default 1s)")
    parser.add_argument("--no-nginx", action="store_true", help="skip the nginx reference")
    ns = parser.parse_args()
    macro = Macro(ns.duration, ns.warmup)
    targets: dict[str, tuple[str, int]] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="modelmux-macro-") as tmp_name:
        tmp = Path(tmp_name)
        servers: list[ServeProcess] = []
        nginx: subprocess.Popen[bytes] | None = None
        try:
            mock = ServeProcess("mock", mock_config("mock", 100), tmp, {LOAD_CPU})
            servers.append(mock)
            targets["direct (mock)"] = (mock.url, mock.pid)
            try:
                proxy = ServeProcess("proxy", proxy_config("mock", mock.url + "/v1"), tmp,
                                     {PROXY_CPU})
                servers.append(proxy)
                targets["ModelMux proxy"] = (proxy.url, proxy.pid)
            except StartError as exc:
                notes.append(f"ModelMux proxy not measured: {exc}")
            if not ns.no_nginx:
                started = start_nginx(tmp, mock.target.port)
                if isinstance(started, str):
                    notes.append(f"nginx not measured: {started}")
                else:
                    nginx, url = started
                    targets["nginx proxy"] = (url, nginx.pid)
            rows = measure(macro, targets)
            wrk = macro.wrk(mock.url, ns.duration)
            rows["wrk"] = wrk
            print(render(rows, targets, macro, notes, ns))
        finally:
            if nginx is not None:
                nginx.terminate()
                nginx.wait(10)
            for server in reversed(servers):
                server.stop()
    return 0


def measure(macro: Macro, targets: dict[str, tuple[str, int]]) -> dict[str, Any]:
    """The four measurements against every target."""
    rows: dict[str, Any] = {"c32": {}, "stream": {}, "c1": {}, "rss": {}}
    for name, (url, pid) in targets.items():
        rows["c32"][name] = macro.bench(url, "--concurrency", "32", "--no-stream")
        before = tree_rss([pid])
        rows["stream"][name] = macro.bench(url, "--concurrency", "32", "--stream", pid=pid)
        rss = rows["stream"][name]["rss"]
        rows["rss"][name] = (before, rss["peak_bytes"], tree_hwm([pid]))
        rows["c1"][name] = macro.bench(url, "--concurrency", "1", "--no-stream")
    return rows


def render(rows: dict[str, Any], targets: dict[str, tuple[str, int]], macro: Macro,
           notes: list[str], ns: argparse.Namespace) -> str:
    names = list(targets)
    direct = rows["c1"].get("direct (mock)")

    def cells(fn: Any) -> str:
        return " | ".join(fn(name) for name in names)

    def added(name: str) -> str:
        res = rows["c1"][name]
        if name.startswith("direct") or direct is None:
            return (f"{fmt(res['latency_ms']['p50'], digits=3)} / "
                    f"{fmt(res['latency_ms']['p99'], digits=3)} (absolute)")
        return (f"{fmt(res['latency_ms']['p50'] - direct['latency_ms']['p50'], digits=3, sign=True)}"
                f" / {fmt(res['latency_ms']['p99'] - direct['latency_ms']['p99'], digits=3, sign=True)}")

    def errors(name: str) -> int:
        return sum(rows[k][name]["errors"]["total"] for k in ("c32", "stream", "c1"))

    lines = [
        (f"Machine: {machine()}; proxy on CPU {PROXY_CPU}, mock and load generator on CPU "
         f"{LOAD_CPU}; {ns.duration:g} s per run after {ns.warmup} warmup."),
        "",
        "| Measurement | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
        "| (1) non-stream, c32: req/s | " + cells(
            lambda n: fmt(rows["c32"][n]["req_per_s"])) + " |",
        "| (1) latency p50 / p99 ms | " + cells(
            lambda n: f"{rows['c32'][n]['latency_ms']['p50']:.2f} / "
                      f"{rows['c32'][n]['latency_ms']['p99']:.2f}") + " |",
        "| (2) 100-chunk stream, c32: streams/s (chunks/s) | " + cells(
            lambda n: f"{fmt(rows['stream'][n]['streams_per_s'])} "
                      f"({fmt(rows['stream'][n]['chunks_per_s'])})") + " |",
        "| (2) TTFB p50 / p99 ms | " + cells(
            lambda n: f"{rows['stream'][n]['ttfb_ms']['p50']:.2f} / "
                      f"{rows['stream'][n]['ttfb_ms']['p99']:.2f}") + " |",
        "| (3) added latency over direct, c1: p50 / p99 ms | " + cells(added) + " |",
        "| (4) RSS during the c32 stream run: idle → peak (VmHWM) | " + cells(
            lambda n: f"{mib(rows['rss'][n][0])} → {mib(rows['rss'][n][1])} "
                      f"({mib(rows['rss'][n][2])})") + " |",
        "| errors (all runs) | " + cells(lambda n: str(errors(n))) + " |",
        "",
    ]
    if rows["wrk"] is not None:
        ours = rows["c32"]["direct (mock)"]["req_per_s"]
        lines.append(f"Generator cross-check on direct, non-stream c32: wrk {rows['wrk']:.0f} req/s, "
                     f"modelmux bench {ours:.0f} req/s (separate runs; the mock shares CPU "
                     f"{LOAD_CPU} with the generator, so a cheaper generator leaves it more CPU).")
    lines += [f"Note: {note}" for note in notes]
    lines += ["", ("Commands (servers: `modelmux serve --config <generated>`, pinned with "
                   "sched_setaffinity; nginx via taskset):"), ""]
    lines += [f"    {cmd}" for cmd in macro.commands]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
