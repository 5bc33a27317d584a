"""CPU per chat request with the response cache off, on and hit, on and missed (then stored).

Run: ``python benchmarks/cache_cpu.py [--requests 5000] [--rounds 5]``;
``--off-only --repo PATH`` measures only the cache-off rows with the ``modelmux`` package of
another checkout (to compare with the code before the cache existed). Each request goes
through the whole App (``serve_exchange`` → routes → chat door → pipeline → mock provider →
delivery → the request record's metrics) on an in-memory exchange: no socket, no client, so
``time.process_time`` counts only ModelMux's own work. Scenarios run in turns within each
round (off, hit, miss+store, and the streamed hit/off pair), so a busy machine slows all
alike; the median round is printed. Not a pytest test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import msgspec

_repo = sys.argv[sys.argv.index("--repo") + 1] if "--repo" in sys.argv else None
sys.path.insert(0, _repo or str(Path(__file__).resolve().parent.parent))

from modelmux.api.app import App
from modelmux.config.features import CacheConfig
from modelmux.config.providers import MockProviderConfig
from modelmux.config.schema import Config, LoggingConfig
from modelmux.server.exchange import Exchange, serve_exchange


class MemoryStream:
    """The server side of one request, kept in memory (``server.exchange.Stream``)."""

    write_blocked = False

    def __init__(self) -> None:
        self.status = 0
        self.sent = 0

    def send_head(self, status: int, headers: list[tuple[bytes, bytes]], *, end: bool,
                  body: bytes = b"") -> None:
        self.status = status
        self.sent += len(body)

    def send_data(self, data: bytes) -> None:
        self.sent += len(data)

    def send_end(self) -> None:
        pass

    async def drain(self) -> None:
        pass

    def send_continue(self) -> None:
        pass

    def resume_body(self) -> None:
        pass

    def open_connections(self) -> int:
        return 1


def app_for(cache: bool) -> App:
    mock = MockProviderConfig(name="mock", models=["mock"], text="It is sunny.", chunks=4)
    return App(Config(provider=[mock], logging=LoggingConfig(access_log=False),
                      cache=CacheConfig(enabled=cache)))


async def one(app: App, body: bytes) -> None:
    stream = MemoryStream()
    exchange = Exchange(stream, "POST", "/v1/chat/completions",  # type: ignore[arg-type]
                        [(b"content-type", b"application/json")], http_version="1.1",
                        client="bench", max_body=1 << 20, body_timeout=30.0,
                        declared_length=len(body))
    exchange.feed_body(body)
    exchange.finish_body()
    await serve_exchange(app, exchange, client="bench", gone=lambda: False, cut=lambda: None)
    exchange.done()
    assert stream.status == 200, stream.status


def body(text: str, stream: bool = False) -> bytes:
    return msgspec.json.encode({"model": "mock", "stream": stream, "temperature": 0,
                                "messages": [{"role": "user", "content": text}]})


async def cpu_per_request(app: App, bodies: list[bytes]) -> float:
    start = time.process_time()
    for data in bodies:
        await one(app, data)
    return (time.process_time() - start) / len(bodies) * 1e6


async def off_only(requests: int, rounds: int) -> None:
    off = app_for(False)
    same, same_stream = body("What is the weather?"), body("What is the weather?", True)
    rows: dict[str, list[float]] = {"non-stream, cache off": [], "stream, cache off": []}
    for _ in range(rounds):
        rows["non-stream, cache off"].append(await cpu_per_request(off, [same] * requests))
        rows["stream, cache off"].append(await cpu_per_request(off, [same_stream] * requests))
    import modelmux

    print(f"modelmux from {Path(modelmux.__file__).parent}")
    for name, values in rows.items():
        print(f"| {name} | {statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f}) |")
    await off.aclose()


async def main(requests: int, rounds: int) -> None:
    off, on = app_for(False), app_for(True)
    same, same_stream = body("What is the weather?"), body("What is the weather?", True)
    await one(on, same)
    await one(on, same_stream)  # stored: every later one is a hit
    results: dict[str, list[float]] = {}
    for turn in range(rounds):
        fresh = [body(f"question {turn} {i}") for i in range(requests)]
        runs = {
            "non-stream, cache off": (off, [same] * requests),
            "non-stream, cache on: hit": (on, [same] * requests),
            "non-stream, cache on: miss + store": (on, fresh),
            "stream, cache off": (off, [same_stream] * requests),
            "stream, cache on: hit": (on, [same_stream] * requests),
        }
        for name, (app, bodies) in runs.items():
            results.setdefault(name, []).append(await cpu_per_request(app, bodies))
    assert on.cache is not None
    print(f"{requests} requests x {rounds} rounds; median (min-max) CPU µs per request")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f}) |")
    print("cache:", on.cache.stats())
    await off.aclose()
    await on.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--off-only", action="store_true")
    parser.add_argument("--repo", help="the checkout whose modelmux package to measure")
    args = parser.parse_args()
    import uvloop

    uvloop.run((off_only if args.off_only else main)(args.requests, args.rounds))
