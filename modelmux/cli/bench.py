"""``modelmux bench``: load-test chat completions at ``--url``, or proxy against direct (``--self``).

Argument parsing and orchestration only; the client lives in ``modelmux.bench``. Exit codes: 0
after a run, 1 when every request of a run failed, 2 for bad arguments or servers that do not
start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelmux.bench.client import Plan, Tally
    from modelmux.bench.report import Result
    from modelmux.bench.wire import Target

EPILOG = """Examples:
  modelmux bench --url http://127.0.0.1:3000 --concurrency 32 --duration 10
  modelmux bench --url http://127.0.0.1:3000 --stream --requests 5000 --warmup 500
  modelmux bench --self --stream --chunks 100 --json
  taskset -c 1 modelmux bench --self --proxy-cpus 0 --upstream-cpus 1 --duration 5"""


def add_parser(commands: Any) -> None:
    """Register ``bench`` on the ``modelmux`` subcommand parsers."""
    parser = commands.add_parser(
        "bench", help="load-test chat completions (a URL, or proxy vs direct with --self)",
        description="Load generator for POST /v1/chat/completions: keep-alive HTTP/1.1, one\n"
        "connection per concurrency slot. --self starts ModelMux's mock as the direct target\n"
        "and a second modelmux (openai_compatible provider) in front of it as the proxy, and\n"
        "reports the proxy's overhead.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="server to load: http(s)://host:port[/path]; "
                       "the path defaults to /v1/chat/completions")
    where.add_argument("--self", dest="self_mode", action="store_true",
                       help="start a mock upstream and a proxy locally; report the overhead")
    parser.add_argument("-c", "--concurrency", type=int, default=32, metavar="N",
                        help="connections, one request in flight on each (default 32)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("-d", "--duration", type=float, metavar="S", help="seconds to measure (default 5)")
    budget.add_argument("-n", "--requests", type=int, metavar="N", help="requests to measure")
    parser.add_argument("--stream", action=argparse.BooleanOptionalAction, default=False,
                        help="request SSE streams (default --no-stream)")
    parser.add_argument("--chunks", type=int, default=100, metavar="N",
                        help="--self: pieces the mock streams its answer in (default 100)")
    parser.add_argument("--model", default="mock", metavar="M", help="model to ask for (default mock)")
    parser.add_argument("--payload-bytes", type=int, default=100, metavar="B",
                        help="size of the user prompt in bytes (default 100)")
    parser.add_argument("--warmup", default="0", metavar="W", help="excluded from the stats: 2s (seconds), "
                        "200r (requests), or a bare number in the unit of the budget (default 0)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="S",
                        help="seconds for one request (and one connect) before it counts as a "
                        "timeout (default 30)")
    parser.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="extra request header (repeatable), e.g. 'authorization: Bearer sk-..'")
    parser.add_argument("--pid", type=int, action="append", default=[], metavar="PID",
                        help="--url: a local server process whose RSS to sample (repeatable)")
    parser.add_argument("--proxy-cpus", metavar="CPUS", help="--self: pin the proxy to these CPUs (e.g. 0)")
    parser.add_argument("--upstream-cpus", metavar="CPUS", help="--self: pin the mock upstream to these CPUs")
    parser.add_argument("--loop", choices=["auto", "uvloop", "asyncio"], default="auto",
                        help="event loop of the load generator (default: uvloop when installed)")
    parser.add_argument("--json", action="store_true", help="print one JSON object, no progress")


def parse_warmup(text: str, by_requests: bool) -> tuple[float, int]:
    """``(seconds, requests)`` of warmup from ``2s``, ``200r`` or a bare number.

    Raises:
        ValueError: not one of those forms.
    """
    text = text.strip().lower()
    if text.endswith("s"):
        seconds = float(text[:-1])
        if seconds < 0:
            raise ValueError("negative warmup")
        return seconds, 0
    if text.endswith(("r", "req")):
        count = int(text.rstrip("req"))
        if count < 0:
            raise ValueError("negative warmup")
        return 0.0, count
    if by_requests:
        return parse_warmup(text + "r", True)
    return parse_warmup(text + "s", False)


def _headers(raw: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for item in raw:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"header {item!r} is not 'NAME: VALUE'")
        out.append((name.strip(), value.strip()))
    return out


def _check(ns: argparse.Namespace) -> tuple[Plan, list[tuple[str, str]]]:
    """The plan and headers from the arguments. Raises: ValueError: a bad value, said plainly."""
    from modelmux.bench.client import Plan

    if ns.concurrency < 1:
        raise ValueError("--concurrency must be at least 1")
    if ns.requests is not None and ns.requests < 1:
        raise ValueError("--requests must be at least 1")
    duration = ns.duration if ns.duration is not None or ns.requests is not None else 5.0
    if duration is not None and duration <= 0:
        raise ValueError("--duration must be positive")
    if ns.timeout <= 0 or ns.payload_bytes < 0 or ns.chunks < 1:
        raise ValueError("--timeout must be positive, --payload-bytes >= 0, --chunks >= 1")
    seconds, count = parse_warmup(ns.warmup, ns.requests is not None)
    plan = Plan(concurrency=ns.concurrency, duration=duration, requests=ns.requests,
                warmup_seconds=seconds, warmup_requests=count, timeout=ns.timeout,
                stream=ns.stream)
    return plan, _headers(ns.header)


def _run_loop(coro: Coroutine[Any, Any, Any], kind: str) -> Any:
    if kind != "asyncio":
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


async def _measure(target: Target, request: bytes, plan: Plan, pids: Sequence[int],
                   label: str, show: bool) -> Tally:
    from modelmux.bench.client import LoadRun
    from modelmux.bench.report import Progress

    progress = Progress(sys.stdout, label) if show else None
    run = LoadRun(target, request, plan, watch_pids=pids, on_tick=progress)
    try:
        return await run.run()
    finally:
        if progress is not None:
            progress.clear()


def run(ns: argparse.Namespace) -> int:
    """Execute ``modelmux bench``; returns the exit code."""
    from modelmux import __version__, _accel
    from modelmux.bench import report as rep
    from modelmux.bench.procfs import tree_hwm
    from modelmux.bench.wire import chat_body, encode_request, parse_url

    try:
        plan, headers = _check(ns)
        target = parse_url(ns.url) if ns.url else None
        proxy_cpus = _cpus(ns.proxy_cpus)
        upstream_cpus = _cpus(ns.upstream_cpus)
    except ValueError as exc:
        print(f"modelmux bench: {exc}", file=sys.stderr)
        return 2
    body = chat_body(ns.model, ns.payload_bytes, plan.stream)
    show = sys.stdout.isatty() and not ns.json
    report: dict[str, Any] = {
        "mode": "url" if target else "self",
        "plan": {"concurrency": plan.concurrency, "duration": plan.duration,
                 "requests": plan.requests, "stream": plan.stream, "model": ns.model,
                 "payload_bytes": ns.payload_bytes, "warmup": ns.warmup,
                 "timeout": plan.timeout, "chunks": None if target else ns.chunks},
        "machine": {"cpus": os.cpu_count(), "modelmux": __version__,
                    "implementation": _accel.implementation()},
        "runs": {}, "overhead": None, "proxy_unavailable": None,
    }

    def one(name: str, where: Target, pids: Sequence[int]) -> Result:
        request = encode_request(where, body, headers, plan.stream)
        tally = _run_loop(_measure(where, request, plan, pids, name, show), ns.loop)
        hwm = tree_hwm(pids) if pids else None
        return rep.result(tally, where.url, plan.stream, hwm=hwm, local=bool(pids))

    previous = signal.signal(signal.SIGTERM, _terminate)  # unwind, so local servers stop too
    try:
        if target is not None:
            report["runs"]["url"] = one("url", target, ns.pid)
        else:
            code = _self_mode(ns, report, body, headers, plan.stream, proxy_cpus, upstream_cpus,
                              one)
            if code:
                return code
    except KeyboardInterrupt:  # local servers are already stopped by _self_mode's finally
        print("modelmux bench: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    runs = [r for r in report["runs"].values() if r is not None]
    if ns.json:
        print(json.dumps(report, indent=2))
    else:
        print(rep.render(report))
    return 1 if any(rep.failed_completely(r) for r in runs) else 0


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _cpus(spec: str | None) -> set[int] | None:
    from modelmux.bench.local import parse_cpus

    return parse_cpus(spec) if spec else None


def _self_mode(ns: argparse.Namespace, report: dict[str, Any], body: bytes,
               headers: list[tuple[str, str]], stream: bool, proxy_cpus: set[int] | None,
               upstream_cpus: set[int] | None,
               one: Callable[[str, Target, Sequence[int]], Result]) -> int:
    """Start the mock (direct) and, when possible, the proxy; measure both; fill ``report``."""
    from modelmux.bench import report as rep
    from modelmux.bench.local import (
        ServeProcess,
        StartError,
        config_problem,
        mock_config,
        probe,
        proxy_config,
    )

    with tempfile.TemporaryDirectory(prefix="modelmux-bench-") as tmp:
        servers: list[ServeProcess] = []
        try:
            direct = ServeProcess("direct", mock_config(ns.model, ns.chunks), Path(tmp),
                                  upstream_cpus)
            servers.append(direct)
            problem = probe(direct.target, body, stream, headers, ns.timeout)
            if problem:
                raise StartError(f"direct: the mock does not answer: {problem}")
            proxy: ServeProcess | None = None
            text = proxy_config(ns.model, direct.url + "/v1")
            reason = config_problem(text)
            if reason is None:
                try:
                    proxy = ServeProcess("proxy", text, Path(tmp), proxy_cpus)
                    servers.append(proxy)
                    reason = probe(proxy.target, body, stream, headers, ns.timeout)
                except StartError as exc:
                    reason = str(exc)
            else:
                reason = f"this modelmux has no openai_compatible provider ({reason})"
            report["runs"]["direct"] = one("direct", direct.target, [direct.pid])
            if reason is None and proxy is not None:
                report["runs"]["proxy"] = one("proxy", proxy.target, [proxy.pid])
                report["overhead"] = rep.overhead(report["runs"]["direct"],
                                                  report["runs"]["proxy"])
            else:
                report["runs"]["proxy"] = None
                report["proxy_unavailable"] = reason
        except StartError as exc:
            print(f"modelmux bench: {exc}", file=sys.stderr)
            return 2
        finally:
            for server in reversed(servers):
                server.stop()
    return 0
