"""Instructions per proxied request: ``modelmux serve`` under callgrind against the nginx mock.

Run: ``python benchmarks/callgrind_proxy.py [--http1 fast] [--requests 1000] [--streams 200]``.
The proxy (``benchmarks/macro.py``'s config) runs under ``valgrind --tool=callgrind``; after
200 warm-up requests (``--warmup``) the counters are zeroed (``callgrind_control -z``), N
requests go through at concurrency 8, and the dump (``callgrind_control -d``) gives the
user-space instructions of the whole proxy process, divided by N. Deterministic enough to
compare commits on a shared machine. Not a pytest test.

Scenarios: ``non-stream`` and ``stream`` (OpenAI-compatible upstream, the stream spliced),
``translated`` (an Anthropic Messages stream of 100 text deltas behind an ``anthropic``
provider, asked for through the OpenAI chat door, so every event is translated to an OpenAI
chunk) and ``messages`` (the reverse: ``/v1/messages`` with ``"stream": true`` to the
OpenAI-compatible 100-chunk stream; only on a tree with the Messages door). The chat door is
loaded by ``modelmux bench``; the Messages door by this script's own keep-alive client.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import macro, nginx  # noqa: E402
from modelmux.bench.wire import ResponseParser, Target, encode_request, prompt  # noqa: E402

WARMUP = 200
CONCURRENCY = 8
CHUNKS = 100
"""Events of every mock stream: 100 OpenAI chunks, or 100 Anthropic text deltas."""


class Scenario(NamedTuple):
    """One measured workload: the door it enters, the model (so the upstream) and whether
    it streams."""

    name: str
    door: str  # "chat" (modelmux bench) or "messages" (messages_load)
    model: str
    stream: bool


SCENARIOS = (
    Scenario("non-stream", "chat", "mock", False),
    Scenario("stream", "chat", "mock-stream", True),
    Scenario("translated", "chat", "claude-stream", True),
    Scenario("messages", "messages", "mock-stream", True),
)


def bench(url: str, requests: int, stream: bool, model: str | None = None) -> None:
    """``modelmux bench`` with an exact request count; raises if any request failed."""
    chosen = ["--model", model or "mock-stream"] if stream else []
    cmd = [sys.executable, "-m", "modelmux", "bench", "--url", url, "--requests", str(requests),
           "--warmup", "0", "--concurrency", str(CONCURRENCY), "--json",
           *(["--stream", *chosen] if stream else ["--no-stream"])]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    try:
        errors = json.loads(done.stdout)["runs"]["url"]["errors"]["total"]
    except (ValueError, KeyError) as exc:
        raise RuntimeError(f"bench failed: {done.stderr[-400:]}") from exc
    if errors:
        raise RuntimeError(f"{errors} of {requests} requests failed")


def messages_request(port: int, model: str) -> bytes:
    """A streamed ``POST /v1/messages`` as Anthropic's SDK would send it (100-byte prompt)."""
    body = json.dumps({"model": model, "max_tokens": 256, "stream": True,
                       "messages": [{"role": "user", "content": prompt(100)}]}).encode()
    target = Target("http", "127.0.0.1", port, "/v1/messages")
    return encode_request(target, body, [("anthropic-version", "2023-06-01")], stream=True)


async def _messages_slot(port: int, request: bytes, left: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while left[0] > 0:
            left[0] -= 1
            writer.write(request)
            parser = ResponseParser()
            seen = bytearray()
            while not parser.complete:
                data = await asyncio.wait_for(reader.read(65536), 120)
                if not data:
                    raise RuntimeError("the proxy closed a Messages stream early")
                parser.feed(data)
                seen += data
            if parser.status != 200 or b"event: message_stop" not in seen:
                raise RuntimeError(f"Messages stream failed: HTTP {parser.status}: "
                                   f"{bytes(seen[-300:])!r}")
    finally:
        writer.close()


def messages_load(port: int, requests: int, model: str) -> None:
    """``requests`` streamed Messages calls over ``CONCURRENCY`` keep-alive connections;
    raises unless every one is a 200 that reached ``message_stop``."""
    request = messages_request(port, model)
    left = [requests]

    async def run() -> None:
        await asyncio.gather(*(_messages_slot(port, request, left) for _ in range(CONCURRENCY)))

    asyncio.run(run())


def load(scenario: Scenario, port: int, count: int) -> None:
    if scenario.door == "messages":
        messages_load(port, count, scenario.model)
    else:
        bench(f"http://127.0.0.1:{port}", count, scenario.stream, scenario.model)


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
            streams: int, access_log: bool = False,
            scenarios: tuple[Scenario, ...] = SCENARIOS[:2],
            warmup: int = WARMUP) -> dict[str, float]:
    """Instructions per request (or per 100-event stream) of each scenario for one backend;
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
    out: dict[str, float] = {}
    try:
        nginx.wait_port(port, timeout=600)  # valgrind starts slowly on a busy machine
        for scenario in scenarios:
            count = streams if scenario.stream else requests
            load(scenario, port, warmup)
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True,
                           capture_output=True)
            before = set(tmp.glob(f"callgrind.out.{proc.pid}*"))
            load(scenario, port, count)
            out[scenario.name] = dump_total(tmp, proc.pid, before) / count
    finally:
        proc.terminate()
        proc.wait(60)
    return out


def available(upstream: macro.Upstream, names: list[str] | None) -> tuple[Scenario, ...]:
    """The scenarios asked for (default: all) that this tree and mock can run; says why
    any is left out."""
    chosen = [s for s in SCENARIOS if names is None or s.name in names]
    kept = []
    for scenario in chosen:
        if scenario.name == "translated" and upstream.anthropic_url is None:
            print("translated: skipped, no Anthropic mock (needs nginx)", file=sys.stderr)
        elif scenario.door == "messages" and importlib.util.find_spec(
                "modelmux.api.messages") is None:
            print("messages: skipped, this tree has no /v1/messages door", file=sys.stderr)
        else:
            kept.append(scenario)
    return tuple(kept)


def report(http1: str, counts: dict[str, float]) -> str:
    """The first line as before (per request or stream); streams also per event."""
    line = f"http1={http1}: " + ", ".join(f"{k} {v:,.0f} instructions/request"
                                          for k, v in counts.items())
    per_chunk = [f"{k} {v / CHUNKS:,.0f}" for k, v in counts.items() if k != "non-stream"]
    if per_chunk:
        line += f"\nhttp1={http1}: per chunk (stream ÷ {CHUNKS}): " + ", ".join(per_chunk)
    return line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http1", choices=macro.BACKENDS, action="append")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--access-log", action="store_true",
                        help="access log on (the default config; macro.py's turns it off)")
    parser.add_argument("--scenario", choices=[s.name for s in SCENARIOS], action="append",
                        help="measure only these (repeatable; default: all this tree can run)")
    parser.add_argument("--warmup", type=int, default=WARMUP,
                        help=f"requests (streams) before zeroing (default {WARMUP})")
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
            scenarios = available(upstream, ns.scenario)
            for http1 in ns.http1 or macro.BACKENDS:
                counts = measure(tmp, upstream, http1, ns.requests, ns.streams, ns.access_log,
                                 scenarios, ns.warmup)
                print(report(http1, counts), flush=True)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
