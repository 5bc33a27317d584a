"""The performance issue's macro table: ModelMux as a proxy against a static mock, and nginx.

Run: ``python benchmarks/macro.py [--duration 5]``. The mock upstream is nginx serving ModelMux's
mock answers as static bodies (``benchmarks/nginx.py``; ModelMux's own mock without nginx or with
``--modelmux-mock``) on CPU 1 with the load generator; on CPU 0 the ModelMux proxy, once per
HTTP/1.1 backend (``fast`` and ``h11``), and nginx as the reference proxy. A third mock port
serves an Anthropic Messages stream, which only ModelMux translates (row 6). It prints a markdown
table and the commands. Not a pytest test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import nginx  # noqa: E402
from benchmarks.test_bench_sse import anthropic_stream  # noqa: E402
from modelmux.bench.local import ServeProcess, StartError, mock_config  # noqa: E402
from modelmux.bench.procfs import descendants, tree_hwm, tree_rss  # noqa: E402

CPU_REQUESTS = {"json": 5000, "stream": 500}
"""Requests (streams) of the CPU-per-request runs: exact counts, no warm-up, after the timed runs."""

PROXY_CPU, LOAD_CPU = 0, 1
BACKENDS = ("fast", "h11")


class Target(NamedTuple):
    """Where each workload goes: non-stream and stream URLs (one for a ModelMux proxy)."""

    json_url: str
    stream_url: str
    pid: int
    translates: bool = False  # a ModelMux proxy: it also serves the Anthropic-upstream model


class Upstream(NamedTuple):
    json_url: str
    sse_url: str
    anthropic_url: str | None  # an Anthropic Messages stream (nginx mock only)
    pid: int


def proxy_config(upstream: Upstream, http1: str, access_log: bool = False) -> str:
    """The proxy: ``mock`` relayed to the JSON mock, ``mock-stream`` to the SSE mock, and
    ``claude-stream`` to the Anthropic mock (translated to OpenAI chunks) when there is one.

    nginx runs with ``access_log off``, so ModelMux's access log is off too, unless
    ``access_log`` turns both on (each project's default configuration).
    """
    return (
        f'[server]\nhost = "127.0.0.1"\nport = 0\nhttp1 = "{http1}"\n\n'
        f'[logging]\nlevel = "info"\naccess_log = {"true" if access_log else "false"}\n\n'
        '[[provider]]\nname = "json"\ntype = "openai_compatible"\nmodels = ["mock"]\n'
        f'base_url = "{upstream.json_url}/v1"\n\n'
        '[[provider]]\nname = "sse"\ntype = "openai_compatible"\nmodels = ["mock-stream"]\n'
        f'base_url = "{upstream.sse_url}/v1"\n\n'
        + ('' if upstream.anthropic_url is None else
           '[[provider]]\nname = "claude"\ntype = "anthropic"\nmodels = ["claude-stream"]\n'
           f'api_key = "bench"\nbase_url = "{upstream.anthropic_url}"\n')
    )


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


class Macro:
    """Runs ``modelmux bench`` pinned to the load CPU and keeps each command for the report."""

    def __init__(self, duration: float, warmup: str) -> None:
        self.duration = duration
        self.warmup = warmup
        self.commands: list[str] = []

    def bench(self, url: str, *args: str, pid: int | None = None) -> dict[str, Any]:
        """One ``modelmux bench --json`` run's result for ``url``."""
        budget = [] if "--requests" in args else ["--duration", str(self.duration), "--warmup",
                                                   self.warmup]
        cmd = [*pin(LOAD_CPU), sys.executable, "-m", "modelmux", "bench", "--url", url, *budget,
               *args, "--json"]
        if pid is not None:
            cmd += ["--pid", str(pid)]
        self.commands.append(" ".join(cmd).replace(sys.executable, "python"))
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.duration * 4 + 60,
                              check=False)
        if not done.stdout:
            raise RuntimeError(f"bench failed: {done.stderr}")
        result: dict[str, Any] = json.loads(done.stdout)["runs"]["url"]
        return result

    def wrk(self, url: str, seconds: float, *script_args: str) -> float | None:
        """wrk's Requests/sec on the same body (the generator cross-check), None without wrk.

        ``script_args`` go to ``wrk_post.lua`` (``MODEL PAYLOAD_BYTES [stream]``).
        """
        if not shutil.which("wrk"):
            return None
        script = Path(__file__).with_name("wrk_post.lua")
        cmd = [*pin(LOAD_CPU), "wrk", "-t1", "-c32", f"-d{seconds:g}s", "-s", str(script),
               url + "/v1/chat/completions", *(["--", *script_args] if script_args else [])]
        self.commands.append(" ".join(cmd))
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30,
                             check=False).stdout
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
        return float(found.group(1)) if found else None


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of ``pid`` and its children so far (``/proc/PID/stat``)."""
    user = system = 0
    for each in descendants(pid):
        try:
            with open(f"/proc/{each}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11])
        system += int(fields[12])
    tick = os.sysconf("SC_CLK_TCK")
    return user / tick, system / tick


def cpu_per_run(macro: Macro, url: str, pid: int, count: int,
                *args: str) -> tuple[dict[str, Any], float, float]:
    """One ``--requests count`` run's result, and the server's user and system CPU (µs) per
    request (or stream) over it."""
    before = cpu_times(pid)
    result = macro.bench(url, "--requests", str(count), *args)
    after = cpu_times(pid)
    user, system = ((b - a) / count * 1e6 for a, b in zip(before, after, strict=True))
    return result, user, system


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its children so far."""
    return sum(cpu_times(pid))


def cpu_per_request(macro: Macro, url: str, pid: int, *args: str) -> float:
    """Microseconds of the server's CPU per request over an exact-count run.

    Robust on a shared machine where req/s is not: it counts only the CPU the server got.
    """
    count = CPU_REQUESTS["stream" if "--stream" in args else "json"]
    before = cpu_seconds(pid)
    macro.bench(url, "--concurrency", "32", "--requests", str(count), "--warmup", "0", *args)
    return (cpu_seconds(pid) - before) / count * 1e6


def fmt(value: float | None, unit: str = "", digits: int = 0, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:{'+' if sign else ''}.{digits}f}{unit}"


def mib(n: int | None) -> str:
    return "n/a" if not n else f"{n / 1048576:.1f} MiB"


def start_upstream(tmp: Path, ns: argparse.Namespace, notes: list[str],
                   procs: list[subprocess.Popen[bytes]], servers: list[ServeProcess]) -> Upstream:
    """The mock upstream on the load CPU: nginx with static bodies unless unavailable."""
    if not ns.modelmux_mock and nginx.binary() is not None:
        bodies = nginx.capture_bodies(tmp)
        claude = anthropic_stream(100)
        ports = [nginx.free_port() for _ in range(3)]
        entries = [(ports[0], "application/json", "mock.json", bodies[0]),
                   (ports[1], "text/event-stream", "mock.sse", bodies[1]),
                   (ports[2], "text/event-stream", "claude.sse", claude)]
        started = nginx.start("mock", nginx.mock_servers(entries, tmp), ports, tmp, pin(LOAD_CPU))
        if not isinstance(started, str):
            procs.append(started)
            notes.append(f"mock upstream: nginx returning ModelMux's mock bodies ({len(bodies[0])} "
                         f"B JSON, {len(bodies[1])} B SSE stream of 100 chunks) and a "
                         f"{len(claude)} B Anthropic stream of 100 text deltas, on CPU {LOAD_CPU}")
            url = "http://127.0.0.1:{}".format
            return Upstream(url(ports[0]), url(ports[1]), url(ports[2]), started.pid)
        notes.append(f"nginx mock not started: {started}")
    both = mock_config("mock", 100).replace('models = ["mock"]', 'models = ["mock", "mock-stream"]')
    mock = ServeProcess("mock", both, tmp, {LOAD_CPU})
    servers.append(mock)
    notes.append("mock upstream: ModelMux's mock provider (slower than nginx: the direct "
                 "column is bounded by it); no Anthropic upstream")
    return Upstream(mock.url, mock.url, None, mock.pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    parser.add_argument("--warmup", default="1s", help="warmup per run (default 1s)")
    parser.add_argument("--no-nginx", action="store_true", help="skip the nginx reference proxy")
    parser.add_argument("--modelmux-mock", action="store_true",
                        help="use ModelMux's mock provider as the upstream instead of nginx")
    parser.add_argument("--http1", choices=BACKENDS, action="append",
                        help="proxy backends to measure (default: both)")
    parser.add_argument("--access-log", action="store_true",
                        help="access logs on in ModelMux and nginx, as their default configs have them")
    ns = parser.parse_args()
    macro = Macro(ns.duration, ns.warmup)
    targets: dict[str, Target] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="modelmux-macro-") as tmp_name:
        tmp = Path(tmp_name)
        servers: list[ServeProcess] = []
        procs: list[subprocess.Popen[bytes]] = []
        try:
            upstream = start_upstream(tmp, ns, notes, procs, servers)
            if ns.access_log:
                notes.append("access logs on: ModelMux's default line to its stderr pipe, nginx's "
                             "combined format to a file, one write a request")
            json_url, sse_url = upstream.json_url, upstream.sse_url
            targets["direct (mock)"] = Target(json_url, sse_url, upstream.pid)
            for backend in ns.http1 or BACKENDS:
                try:
                    config = proxy_config(upstream, backend, ns.access_log)
                    proxy = ServeProcess(f"proxy-{backend}", config, tmp, {PROXY_CPU})
                except StartError as exc:
                    notes.append(f"ModelMux proxy ({backend}) not measured: {exc}")
                    continue
                servers.append(proxy)
                targets[f"ModelMux proxy ({backend})"] = Target(
                    proxy.url, proxy.url, proxy.pid, translates=upstream.anthropic_url is not None)
            if not ns.no_nginx:
                ports = [nginx.free_port(), nginx.free_port()]
                pairs = list(zip(ports, (int(u.rsplit(":", 1)[1]) for u in (json_url, sse_url))))
                started = nginx.start("proxy", nginx.proxy_servers(pairs), ports, tmp, pin(PROXY_CPU),
                                      access_log=ns.access_log)
                if isinstance(started, str):
                    notes.append(f"nginx proxy not measured: {started}")
                else:
                    procs.append(started)
                    targets["nginx proxy"] = Target(f"http://127.0.0.1:{ports[0]}",
                                                    f"http://127.0.0.1:{ports[1]}", started.pid)
            rows = measure(macro, targets)
            rows["wrk"] = macro.wrk(json_url, ns.duration)
            print(render(rows, targets, macro, notes, ns))
        finally:
            stop_all(procs, servers)
    return 0


def stop_all(procs: list[subprocess.Popen[bytes]], servers: list[ServeProcess]) -> None:
    """Stop the nginx processes and the ModelMux servers a run started, newest server first."""
    for proc in procs:
        proc.terminate()
        proc.wait(10)
    for server in reversed(servers):
        server.stop()


def measure(macro: Macro, targets: dict[str, Target]) -> dict[str, Any]:
    """The four measurements against every target."""
    rows: dict[str, Any] = {"c32": {}, "stream": {}, "c1": {}, "rss": {}, "cpu": {},
                            "anthropic": {}}
    for name, target in targets.items():
        rows["c32"][name] = macro.bench(target.json_url, "--concurrency", "32", "--no-stream")
        before = tree_rss([target.pid])
        rows["stream"][name] = macro.bench(target.stream_url, "--concurrency", "32", "--stream",
                                           "--model", "mock-stream", pid=target.pid)
        rss = rows["stream"][name]["rss"]
        rows["rss"][name] = (before, rss["peak_bytes"], tree_hwm([target.pid]))
        rows["c1"][name] = macro.bench(target.json_url, "--concurrency", "1", "--no-stream")
        rows["cpu"][name] = (
            cpu_per_request(macro, target.json_url, target.pid, "--no-stream"),
            cpu_per_request(macro, target.stream_url, target.pid, "--stream", "--model", "mock-stream"))
        if target.translates:
            claude = ("--stream", "--model", "claude-stream")
            rows["anthropic"][name] = (
                macro.bench(target.stream_url, "--concurrency", "32", *claude),
                cpu_per_request(macro, target.stream_url, target.pid, *claude))
    return rows


def render(rows: dict[str, Any], targets: dict[str, Target], macro: Macro,
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
        extra = rows["anthropic"].get(name)
        return (sum(rows[k][name]["errors"]["total"] for k in ("c32", "stream", "c1"))
                + (extra[0]["errors"]["total"] if extra else 0))

    def translated(name: str) -> str:
        found = rows["anthropic"].get(name)
        if not found:
            return "n/a"
        res, cpu = found
        return (f"{fmt(res['streams_per_s'])} ({fmt(res['chunks_per_s'])}); {cpu:.0f} µs CPU "
                f"→ {1e6 / max(cpu, 1e-3):.0f} per core")

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
        "| (5) server CPU per request, c32: non-stream / 100-chunk stream µs | " + cells(
            lambda n: f"{rows['cpu'][n][0]:.0f} / {rows['cpu'][n][1]:.0f}") + " |",
        "| (5) → req/s and streams/s per core at that CPU cost | " + cells(
            lambda n: f"{1e6 / max(rows['cpu'][n][0], 1e-3):.0f} / "
                      f"{1e6 / max(rows['cpu'][n][1], 1e-3):.0f}") + " |",
        "| (6) Anthropic upstream translated to OpenAI, 100-delta stream, c32: streams/s "
        "(chunks/s); CPU per stream | " + cells(translated) + " |",
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
