"""The floor under any Python proxy here: a uvloop byte relay that parses nothing.

Run: ``python benchmarks/floor_relay.py [--requests 20000] [--busy N]``. Against ``macro.py``'s nginx
mock (JSON answer, CPU 1), a relay on CPU 0 gives each client connection its own upstream
connection and copies bytes both ways from the protocols' callbacks: no HTTP parsing, no
task per request, one ``write`` each way. Whatever ModelMux costs above this (``macro.py``'s
CPU-per-request row, same layout) is its own Python work, not the event loop's or the
kernel's. Prints the relay's CPU per request (user, system) at c32 and c1 and its latency
at c1 next to direct. Not a pytest test.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import macro, nginx  # noqa: E402

BUSY = 0  # --busy: pure-Python work per upstream read, to see the kernel's share grow with it


class _Back(asyncio.Protocol):
    """The upstream side: its bytes go to the client as they come."""

    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if BUSY:
            _ = {i: str(i) for i in range(BUSY)}
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class _Front(asyncio.Protocol):
    """The client side: dials its own upstream connection, then copies bytes to it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.back: _Back | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        asyncio.get_running_loop().create_task(self._dial())

    async def _dial(self) -> None:
        loop = asyncio.get_running_loop()
        _, back = await loop.create_connection(lambda: _Back(self.transport), self.host, self.port)
        self.back = back
        for data in self.pending:
            back.transport.write(data)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        if self.back is None:
            self.pending.append(data)
        else:
            self.back.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.back is not None:
            self.back.transport.close()


async def relay(port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Front("127.0.0.1", upstream_port), "127.0.0.1",
                                      port)
    await server.serve_forever()


Row = tuple[int, dict[str, Any], float, float]  # concurrency, bench result, user, system µs


def measure_relay(script: str, requests: int, *extra: str) -> tuple[list[Row], float]:
    """Start the nginx JSON mock on CPU 1 and ``script --serve PORT MOCK_PORT *extra`` on CPU 0;
    CPU per request at c32 and c1 over ``requests`` each, and direct's c1 p50 (ms)."""
    runner = macro.Macro(5.0, "1s")
    procs: list[subprocess.Popen[bytes]] = []
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="modelmux-relay-") as name:
        try:
            upstream = macro.start_upstream(Path(name), argparse.Namespace(modelmux_mock=False),
                                            [], procs, [])
            port = nginx.free_port()
            proc = subprocess.Popen([*macro.pin(macro.PROXY_CPU), sys.executable, script,
                                     "--serve", str(port), upstream.json_url.rsplit(":", 1)[1],
                                     *extra])
            procs.append(proc)
            nginx.wait_port(port)
            url = f"http://127.0.0.1:{port}"
            for conc in (32, 1):
                args = ("--concurrency", str(conc), "--warmup", "0", "--no-stream")
                runner.bench(url, "--requests", "2000", *args)
                rows.append((conc, *macro.cpu_per_run(runner, url, proc.pid, requests, *args)))
            direct = runner.bench(upstream.json_url, "--concurrency", "1", "--no-stream")
        finally:
            macro.stop_all(procs, [])
    for conc, result, user, system in rows:
        print(f"c{conc}: {result['req_per_s']:.0f} req/s, CPU per request {user + system:.1f} "
              f"us ({user:.1f} user + {system:.1f} system), p50 "
              f"{result['latency_ms']['p50']:.3f} ms, errors {result['errors']['total']}")
    direct_p50: float = direct["latency_ms"]["p50"]
    print(f"c1 added over direct: p50 +{rows[-1][1]['latency_ms']['p50'] - direct_p50:.3f} ms "
          f"(direct p50 {direct_p50:.3f} ms)")
    print("\n".join(["", "Commands:", *runner.commands]))
    return rows, direct_p50


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="build an N-entry dict per answer: Python work without system calls")
    parser.add_argument("--serve", type=int, nargs=2, help=argparse.SUPPRESS)  # relay mode
    ns = parser.parse_args()
    if ns.serve:
        import uvloop

        global BUSY
        BUSY = ns.busy
        uvloop.run(relay(*ns.serve))
        return 0
    if nginx.binary() is None:
        print("needs nginx (apt-get install -y nginx)", file=sys.stderr)
        return 2
    measure_relay(__file__, ns.requests, "--busy", str(ns.busy))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
