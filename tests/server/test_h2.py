"""HTTP/2 on the shared port: h2c prior knowledge, TLS with ALPN, flow control, resets, defences."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx2
import msgspec
import pytest
from h2.errors import ErrorCodes

from modelmux.config.settings import H2Settings
from modelmux.server.exchange import Exchange
from tests.server.h2_helpers import RawH2, make_certs, serving
from tests.server.helpers import DEADLINE, read_response


async def echo(exchange: Exchange) -> None:
    body = await exchange.read_body()
    payload = {"path": exchange.path, "query": exchange.query, "version": exchange.http_version,
               "size": len(body), "host": (exchange.header(b"host") or b"").decode()}
    await exchange.respond(200, [(b"content-type", b"application/json")], msgspec.json.encode(payload))


def test_h2c_prior_knowledge_and_http11_share_the_port(run) -> None:
    async def main() -> None:
        async with serving(echo) as (_, port):
            async with httpx2.AsyncClient(http1=False, http2=True, timeout=DEADLINE) as client:
                big = await client.post(f"http://127.0.0.1:{port}/big?x=1", content=b"x" * 300_000)
                assert big.http_version == "HTTP/2"
                assert big.json() == {"path": "/big", "query": "x=1", "version": "2",
                                      "size": 300_000, "host": f"127.0.0.1:{port}"}
                many = await asyncio.gather(*[client.get(f"http://127.0.0.1:{port}/{i}")
                                              for i in range(30)])
                assert [r.json()["path"] for r in many] == [f"/{i}" for i in range(30)]
            async with httpx2.AsyncClient(timeout=DEADLINE) as client:
                r = await client.get(f"http://127.0.0.1:{port}/one")
                assert r.http_version == "HTTP/1.1" and r.json()["version"] == "1.1"

    run(main())


def test_tls_alpn_picks_h2_or_http11(run, tmp_path: Path) -> None:
    from modelmux.server.tls import server_context

    cert, key, client_ctx = make_certs(tmp_path)

    async def main() -> None:
        async with serving(echo, ssl_context=server_context(str(cert), str(key))) as (_, port):
            for http2, version in ((True, "HTTP/2"), (False, "HTTP/1.1")):
                async with httpx2.AsyncClient(http2=http2, verify=client_ctx, timeout=DEADLINE) as c:
                    r = await c.post(f"https://127.0.0.1:{port}/t", content=b"abc")
                    assert r.http_version == version and r.json()["size"] == 3

    run(main())


def test_rst_stream_cancels_only_that_handler(run) -> None:
    cancelled: list[str] = []
    events: dict[str, asyncio.Event] = {}
    release: dict[str, asyncio.Event] = {}

    async def slow(exchange: Exchange) -> None:
        events[exchange.path].set()
        try:
            await release[exchange.path].wait()
        except asyncio.CancelledError:
            cancelled.append(exchange.path)
            raise
        await exchange.respond(200, [], b"done")

    async def main() -> None:
        for path in ("/a", "/b"):
            events[path], release[path] = asyncio.Event(), asyncio.Event()
        async with serving(slow) as (_, port):
            client = await RawH2.open(port)
            a, b = client.request("/a"), client.request("/b")
            client.flush()
            await asyncio.wait_for(asyncio.gather(events["/a"].wait(), events["/b"].wait()), DEADLINE)
            client.conn.reset_stream(a, ErrorCodes.CANCEL)
            client.flush()
            for _ in range(100):
                if cancelled:
                    break
                await asyncio.sleep(0.01)
            assert cancelled == ["/a"]
            release["/b"].set()
            assert await client.read_until(h2.events.StreamEnded, b) is not None
            await client.close()

    run(main())


def test_flow_control_parks_the_writer_until_window_update(run) -> None:
    wrote: list[int] = []

    async def big(exchange: Exchange) -> None:
        await exchange.start(200, [])
        for i in range(4):
            await exchange.write(b"z" * 50_000)
            wrote.append(i)
        await exchange.end()

    async def main() -> None:
        async with serving(big) as (_, port):
            client = await RawH2.open(port)
            sid = client.request("/")
            client.flush()
            received = 0
            while received < 65_535:
                event = await client.read_until(h2.events.DataReceived, sid)
                assert event is not None
                received += len(event.data)  # type: ignore[attr-defined]
            assert received == 65_535
            await asyncio.sleep(0.05)
            assert len(wrote) <= 1  # parked: the stream window is shut
            client.conn.acknowledge_received_data(received, sid)
            client.flush()
            while received < 200_000:
                event = await client.read_until(h2.events.DataReceived, sid)
                assert event is not None
                size = len(event.data)  # type: ignore[attr-defined]
                received += size
                client.conn.acknowledge_received_data(size, sid)
                client.flush()
            assert await client.read_until(h2.events.StreamEnded, sid) is not None
            assert wrote == [0, 1, 2, 3]
            await client.close()

    run(main())


async def _goaway_code(client: RawH2) -> int:
    event = await client.read_until(h2.events.ConnectionTerminated)
    assert event is not None
    return event.error_code  # type: ignore[attr-defined,no-any-return]


def test_graceful_shutdown_sends_goaway_and_lets_streams_finish(run) -> None:
    async def main() -> None:
        entered, release = asyncio.Event(), asyncio.Event()

        async def wait(exchange: Exchange) -> None:
            entered.set()
            await release.wait()
            await exchange.respond(200, [], b"finished")

        async with serving(wait) as (server, port):
            client = await RawH2.open(port)
            assert client.request("/") == 1
            client.flush()
            await asyncio.wait_for(entered.wait(), DEADLINE)
            stopping = asyncio.create_task(server.shutdown())
            assert await _goaway_code(client) == ErrorCodes.NO_ERROR
            release.set()
            # The client's h2 machine takes no frames after GOAWAY: read the raw rest to EOF.
            rest = await asyncio.wait_for(client.reader.read(), DEADLINE)
            assert rest.endswith(b"finished")
            await asyncio.wait_for(stopping, DEADLINE)
            await client.close()

    run(main())


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) not installed")
def test_h2load_reports_no_errors(run) -> None:
    async def main() -> None:
        async with serving(echo) as (_, port):
            proc = await asyncio.create_subprocess_exec(
                "h2load", "-n", "2000", "-c", "2", "-m", "50", f"http://127.0.0.1:{port}/",
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
            text = out.decode()
            assert proc.returncode == 0, text
            assert "2000 succeeded, 0 failed, 0 errored" in text, text

    run(main())


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
def test_openai_sdk_streams_a_chat_completion_over_http2(run, tls: bool, tmp_path: Path) -> None:
    import openai

    from modelmux.api.app import App
    from modelmux.config.providers import MockProviderConfig
    from modelmux.config.schema import Config
    from modelmux.server.tls import server_context

    cert, key, client_ctx = make_certs(tmp_path)
    cfg = Config(provider=[MockProviderConfig(name="mock", models=["mock"], text="abcde",
                                              repeat=4, chunks=5)])

    async def main() -> None:
        app = App(cfg)
        context = server_context(str(cert), str(key)) if tls else None
        try:
            async with serving(app, ssl_context=context) as (_, port):
                http = httpx2.AsyncClient(http1=False, http2=True, verify=client_ctx if tls else True,
                                          timeout=DEADLINE)
                scheme = "https" if tls else "http"
                async with openai.AsyncOpenAI(api_key="k", base_url=f"{scheme}://127.0.0.1:{port}/v1",
                                              http_client=http) as sdk:
                    stream = await sdk.chat.completions.create(
                        model="mock", messages=[{"role": "user", "content": "hi"}], stream=True)
                    text = ""
                    async for chunk in stream:
                        if chunk.choices and chunk.choices[0].delta.content:
                            text += chunk.choices[0].delta.content
                    assert text == "abcde" * 4
                    raw = await sdk.chat.completions.with_raw_response.create(
                        model="mock", messages=[{"role": "user", "content": "hi"}])
                    assert raw.http_response.http_version == "HTTP/2"
        finally:
            await app.aclose()

    run(main())


def test_settings_are_advertised_and_connection_window_grows(run) -> None:
    async def main() -> None:
        settings = H2Settings(max_concurrent_streams=7, initial_window_size=1 << 20,
                              max_frame_size=32768, max_header_list_size=8192)
        async with serving(echo, http2=settings) as (_, port):
            client = await RawH2.open(port)
            event = await client.read_until(h2.events.RemoteSettingsChanged)
            assert event is not None
            got = {code: change.new_value for code, change in event.changed_settings.items()}  # type: ignore[attr-defined]
            codes = h2.settings.SettingCodes
            assert got[codes.MAX_CONCURRENT_STREAMS] == 7
            assert got[codes.INITIAL_WINDOW_SIZE] == 1 << 20
            assert got[codes.MAX_FRAME_SIZE] == 32768
            assert got[codes.MAX_HEADER_LIST_SIZE] == 8192
            update = await client.read_until(h2.events.WindowUpdated, 0)
            assert update is not None and update.delta == (1 << 20) - 65535  # type: ignore[attr-defined]
            await client.close()

    run(main())


def test_handler_errors_become_json_responses(run) -> None:
    from modelmux.errors import RateLimited

    async def limited(exchange: Exchange) -> None:
        raise RateLimited("slow down")

    async def broken(exchange: Exchange) -> None:
        raise ValueError("bug")

    async def main() -> None:
        for handler, status in ((limited, 429), (broken, 500)):
            async with (serving(handler) as (_, port),
                        httpx2.AsyncClient(http1=False, http2=True, timeout=DEADLINE) as client):
                r = await client.get(f"http://127.0.0.1:{port}/")
                assert r.status_code == status and "error" in r.json()

    run(main())


def test_silent_connection_is_closed_after_header_timeout(run) -> None:
    async def main() -> None:
        async with serving(echo, header_timeout=0.2) as (_, port):
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), DEADLINE)
            writer.write(b"PRI * HTTP")  # a preface that never completes
            assert await asyncio.wait_for(reader.read(), DEADLINE) == b""
            writer.close()

    run(main())


def test_server_tls_and_http2_config_tables() -> None:
    from modelmux.config.schema import decode

    cfg = decode('[server.tls]\ncert_file = "c.pem"\nkey_file = "k.pem"\n'
                 '[server.http2]\nmax_concurrent_streams = 8\n')
    assert cfg.server.tls is not None and cfg.server.tls.cert_file == "c.pem"
    assert cfg.server.http2.settings() == H2Settings(max_concurrent_streams=8)
    assert decode("").server.tls is None


def test_upgrade_h2c_serves_the_request_as_stream_1_then_more_streams(run) -> None:
    async def main() -> None:
        async with serving(echo) as (_, port):
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), DEADLINE)
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                        header_encoding=None))
            settings = conn.initiate_upgrade_connection()
            assert settings is not None
            writer.write(b"GET /up HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                         b"Upgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
            assert head.startswith(b"HTTP/1.1 101 ")
            client = RawH2(reader, writer, conn)
            client.flush()
            data = await client.read_until(h2.events.DataReceived, 1)
            assert data is not None and msgspec.json.decode(data.data)["path"] == "/up"  # type: ignore[attr-defined]
            sid = client.request("/next")
            client.flush()
            data = await client.read_until(h2.events.DataReceived, sid)
            assert data is not None and msgspec.json.decode(data.data)["version"] == "2"  # type: ignore[attr-defined]
            await client.close()

    run(main())


def test_upgrade_h2c_with_a_body_stays_on_http11(run) -> None:
    async def main() -> None:
        async with serving(echo) as (_, port):
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), DEADLINE)
            writer.write(b"POST /b HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                         b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 2\r\n\r\nhi")
            status, _, body = await read_response(reader)
            assert status == 200 and msgspec.json.decode(body)["version"] == "1.1"
            writer.close()

    run(main())


def test_unread_request_bodies_give_the_connection_window_back(run) -> None:
    async def ignore_body(exchange: Exchange) -> None:
        if exchange.path == "/read":
            await echo(exchange)
        else:
            await exchange.respond(204, [])

    async def main() -> None:
        async with (serving(ignore_body) as (_, port),
                    httpx2.AsyncClient(http1=False, http2=True, timeout=DEADLINE) as client):
            for _ in range(6):
                r = await client.post(f"http://127.0.0.1:{port}/skip", content=b"s" * 30_000)
                assert r.status_code == 204
            r = await client.post(f"http://127.0.0.1:{port}/read", content=b"r" * 200_000)
            assert r.json()["size"] == 200_000

    run(main())


def test_body_trickled_longer_than_body_timeout_with_short_gaps_is_read(run) -> None:
    async def main() -> None:
        async with serving(echo, body_timeout=0.5) as (_, port):
            client = await RawH2.open(port)
            sid = client.request("/t", method="POST", end=False)
            for _ in range(16):  # 0.8 s or more in total, 0.05 s between pieces
                await asyncio.sleep(0.05)
                client.conn.send_data(sid, b"x" * 5)
                client.flush()
            client.conn.end_stream(sid)
            client.flush()
            head = await client.read_until(h2.events.ResponseReceived, sid)
            assert head is not None and dict(head.headers)[b":status"] == b"200"
            data = await client.read_until(h2.events.DataReceived, sid)
            assert data is not None and msgspec.json.decode(data.data)["size"] == 80
            await client.close()

    run(main())


def test_body_gap_longer_than_body_timeout_gets_408(run) -> None:
    async def main() -> None:
        async with serving(echo, body_timeout=0.5) as (_, port):
            client = await RawH2.open(port)
            sid = client.request("/t", method="POST", end=False)
            for _ in range(4):
                await asyncio.sleep(0.05)
                client.conn.send_data(sid, b"x" * 5)
                client.flush()
            head = await client.read_until(h2.events.ResponseReceived, sid)  # and then nothing
            assert head is not None and dict(head.headers)[b":status"] == b"408"
            await client.close()

    run(main())
