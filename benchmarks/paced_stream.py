"""The proxy's CPU per streamed event when the upstream sends one event at a time.

Run: ``python benchmarks/paced_stream.py [--streams 3000] [--events 100] [--gap-ms 1] [--http2]``.
``macro.py``'s nginx mock sends a whole stream at once, so under load the proxy reads many
events per read. A model does not: it emits one token event every few milliseconds, and the
proxy reads, relays and writes each on its own. Here a small uvloop server on CPU 1 plays that
upstream (an OpenAI-compatible SSE stream, one HTTP/1.1 chunk, or with ``--http2`` one h2c
DATA frame, per event, ``--gap-ms`` apart); ``modelmux serve`` proxies it on CPU 0 (``openai_compatible``, access log off);
``modelmux bench --stream`` at concurrency 32 on CPU 1 runs ``--streams`` streams after a
warm-up. Prints the proxy's user and system CPU per stream and per event (``/proc/PID/stat``).
Not a pytest test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import macro, nginx  # noqa: E402
from modelmux.bench.local import ServeProcess  # noqa: E402


def event_frames(events: int) -> list[bytes]:
    """``events`` OpenAI chunks and ``[DONE]``, each framed as one HTTP/1.1 chunk."""
    chunk = json.dumps({"id": "chatcmpl-paced", "object": "chat.completion.chunk", "created": 1,
                        "model": "paced", "choices": [{"index": 0, "delta": {"content": "lorem "},
                                                       "logprobs": None, "finish_reason": None}]},
                       separators=(",", ":")).encode()
    payloads = [b"data: " + chunk + b"\n\n"] * events + [b"data: [DONE]\n\n"]
    return [b"%x\r\n%s\r\n" % (len(p), p) for p in payloads]


async def serve_paced(port: int, events: int, gap: float) -> None:
    """The paced upstream: every POST gets the stream, one chunk every ``gap`` seconds."""
    frames = event_frames(events)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                             b"transfer-encoding: chunked\r\n\r\n")
                for frame in frames:
                    writer.write(frame)
                    await asyncio.sleep(gap)
                writer.write(b"0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


async def serve_paced_h2(port: int, events: int, gap: float) -> None:
    """The paced upstream over HTTP/2 with prior knowledge (h2c): one DATA frame per event."""
    import h2.config
    import h2.connection
    import h2.events

    payloads = [p.split(b"\r\n", 1)[1][:-2] for p in event_frames(events)]  # unframe chunks

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        tasks: set[asyncio.Task[None]] = set()

        async def answer(sid: int) -> None:
            conn.send_headers(sid, [(b":status", b"200"), (b"content-type", b"text/event-stream")])
            writer.write(conn.data_to_send())
            for payload in payloads:
                await asyncio.sleep(gap)
                conn.send_data(sid, payload)
                writer.write(conn.data_to_send())
            conn.end_stream(sid)
            writer.write(conn.data_to_send())

        try:
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.StreamEnded):
                        task = asyncio.ensure_future(answer(event.stream_id))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                    elif isinstance(event, h2.events.DataReceived):
                        conn.acknowledge_received_data(event.flow_controlled_length,
                                                       event.stream_id)
                writer.write(conn.data_to_send())
        except ConnectionError:
            pass
        finally:
            for task in tasks:
                task.cancel()
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=3000)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--gap-ms", type=float, default=1.0)
    parser.add_argument("--http2", action="store_true",
                        help="the upstream speaks HTTP/2 with prior knowledge (h2c)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the upstream's own mode
    ns = parser.parse_args()
    if ns.serve:
        import uvloop

        serve = serve_paced_h2 if ns.http2 else serve_paced
        uvloop.run(serve(ns.serve, ns.events, ns.gap_ms / 1000))
        return 0
    port = nginx.free_port()
    upstream = subprocess.Popen([*macro.pin(macro.LOAD_CPU), sys.executable, __file__,
                                 "--serve", str(port), "--events", str(ns.events),
                                 "--gap-ms", str(ns.gap_ms), *(["--http2"] if ns.http2 else [])])
    with tempfile.TemporaryDirectory(prefix="modelmux-paced-") as name:
        servers: list[ServeProcess] = []
        try:
            nginx.wait_port(port)
            config = ('[server]\nhost = "127.0.0.1"\nport = 0\n\n'
                      '[logging]\nlevel = "info"\naccess_log = false\n\n'
                      '[[provider]]\nname = "paced"\ntype = "openai_compatible"\n'
                      f'models = ["paced"]\nbase_url = "http://127.0.0.1:{port}/v1"\n'
                      + ("http2 = true\n" if ns.http2 else ""))
            proxy = ServeProcess("proxy", config, Path(name), {macro.PROXY_CPU})
            servers.append(proxy)
            runner = macro.Macro(ns.streams / 20, "0")  # only its time-out uses the duration
            args = ("--concurrency", "32", "--warmup", "0", "--stream", "--model", "paced")
            runner.bench(proxy.url, "--requests", "300", *args)
            result, user, system = macro.cpu_per_run(runner, proxy.url, proxy.pid, ns.streams,
                                                     *args)
        finally:
            macro.stop_all([upstream], servers)
    per = ns.events + 1
    print(f"{ns.streams} streams of {ns.events} events + [DONE], {ns.gap_ms:g} ms apart, "
          f"upstream {'HTTP/2 (h2c)' if ns.http2 else 'HTTP/1.1'}, c32: "
          f"{result['streams_per_s']:.0f} streams/s, {result['chunks_per_s']:.0f} chunks/s, "
          f"errors {result['errors']['total']}")
    print(f"proxy CPU per stream: {user + system:.0f} us ({user:.0f} user + {system:.0f} "
          f"system); per event: {(user + system) / per:.1f} us")
    print("\n".join(["", "Commands:", *runner.commands]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
