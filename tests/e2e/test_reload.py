"""Hot reload of a running ``modelmux serve``: `modelmux reload`, SIGHUP, rejection, in-flight."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import openai
import pytest

from tests.e2e.proc import ServeProcess, modelmux_command
from tests.server.h2_helpers import make_certs

BASE = "[server]\nport = 0\ndrain_timeout = 20\n"


def mock(models: list[str], **fields: object) -> str:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in fields.items())
    return f'[[provider]]\nname = "m"\ntype = "mock"\nmodels = {json.dumps(models)}\n{extra}'


def model_ids(proc: ServeProcess) -> list[str]:
    conn = http.client.HTTPConnection(proc.host, proc.port, timeout=10)
    try:
        conn.request("GET", "/v1/models")
        return [m["id"] for m in json.loads(conn.getresponse().read())["data"]]
    finally:
        conn.close()


def reload(socket_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*modelmux_command(), "reload", "--control-socket", str(socket_path)],
                          capture_output=True, text=True, timeout=60)


def test_reload_applies_rejects_and_keeps_in_flight_streams(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    control = tmp_path / "run" / "control.sock"
    config.write_text(BASE + mock(["old"], text="tick ", repeat=20, chunks=20, chunk_delay_ms=50))
    proc = ServeProcess(["serve", "--config", str(config), "--control-socket", str(control)],
                        home=tmp_path)
    try:
        assert oct(control.stat().st_mode & 0o777) == "0o600"
        with openai.OpenAI(base_url=proc.url + "/v1", api_key="x", max_retries=0, timeout=30) as sdk:
            stream = sdk.chat.completions.create(model="old", stream=True,
                                                 messages=[{"role": "user", "content": "go"}])
            first = next(iter(stream))
            assert first.choices[0].delta.role == "assistant"

            config.write_text(BASE + mock(["new"]))
            done = reload(control)
            assert done.returncode == 0, done.stderr
            assert "provider[0].models" in done.stdout
            assert model_ids(proc) == ["new"]
            # the stream that started on the old configuration finishes on it
            assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "tick " * 20

        config.write_text(BASE + '[[provider]]\nname = "m"\ntype = "mock"\nmodel = ["x"]\n')
        rejected = reload(control)
        assert rejected.returncode == 1
        assert "rejected" in rejected.stderr and "model" in rejected.stderr
        assert model_ids(proc) == ["new"]

        config.write_text(BASE + mock(["via-sighup"]))
        proc.proc.send_signal(signal.SIGHUP)
        for _ in range(200):  # the signal is handled asynchronously; bounded wait
            if model_ids(proc) == ["via-sighup"]:
                break
            time.sleep(0.02)
        assert model_ids(proc) == ["via-sighup"]
    finally:
        assert proc.stop() == 0
    assert not control.exists()


def test_reload_without_a_server_fails_clearly(tmp_path: Path) -> None:
    result = reload(tmp_path / "nothing.sock")
    assert result.returncode == 1 and "no server answers" in result.stderr


def test_reload_reaches_every_worker(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    control = tmp_path / "control.sock"
    workers = "[server]\nport = 0\nworkers = 2\n"
    config.write_text(workers + mock(["old"]))
    proc = ServeProcess(["serve", "--config", str(config), "--control-socket", str(control)],
                        home=tmp_path)
    try:
        config.write_text(workers + '[[provider]]\nname = "m"\ntype = "mock"\n')
        rejected = reload(control)
        assert rejected.returncode == 1 and "models" in rejected.stderr
        config.write_text(workers + mock(["new"]))
        assert reload(control).returncode == 0
        for _ in range(200):  # each worker reloads on its own SIGHUP; bounded wait for both
            if all(model_ids(proc) == ["new"] for _ in range(20)):
                break
            time.sleep(0.02)
        assert all(model_ids(proc) == ["new"] for _ in range(40))  # whichever worker answers
    finally:
        assert proc.stop() == 0


def status_of(proc: ServeProcess, path: str) -> int:
    conn = http.client.HTTPConnection(proc.host, proc.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_reload_or_upgrade_cannot_turn_auth_off_on_the_public_address_it_serves(
        tmp_path: Path, workers: int) -> None:
    config = tmp_path / "config.toml"
    control = tmp_path / "control.sock"
    # "127.1" binds 127.0.0.1, but is_loopback cannot prove it loopback (not a literal it
    # accepts), so it counts as public: the test stays on loopback
    keyed = (f'[server]\nhost = "127.1"\nport = 0\nworkers = {workers}\n[auth]\nmode = "keys"\n'
             f'master_key = "mk-reload-0123456789"\nsqlite_path = "{tmp_path / "keys.db"}"\n')
    config.write_text(keyed + mock(["m"]))
    proc = ServeProcess(["serve", "--config", str(config), "--control-socket", str(control)],
                        home=tmp_path)
    try:
        assert status_of(proc, "/v1/models") == 401
        config.write_text(f'[server]\nhost = "127.0.0.1"\nport = 0\nworkers = {workers}\n'
                          + mock(["m"]))  # loopback in the file; the sockets stay on 127.1
        rejected = reload(control)
        assert rejected.returncode == 1, rejected.stdout
        assert "refusing to serve without authentication on '127.1'" in rejected.stderr
        assert "needs a restart" in rejected.stderr
        assert all(status_of(proc, "/v1/models") == 401 for _ in range(4))
        upgrade = subprocess.run([*modelmux_command(), "upgrade", "--control-socket",
                                  str(control)], check=False, capture_output=True, text=True,
                                 timeout=120)  # refused before a successor starts
        assert upgrade.returncode == 1 and "configuration is invalid" in upgrade.stderr
        assert "without authentication on '127.1'" in upgrade.stderr
        assert status_of(proc, "/v1/models") == 401
        config.write_text(keyed + mock(["m", "n"]))
        assert reload(control).returncode == 0
    finally:
        assert proc.stop() == 0


def https(proc: ServeProcess, context: ssl.SSLContext) -> http.client.HTTPSConnection:
    context.set_alpn_protocols(["http/1.1"])  # http.client speaks HTTP/1.1 only
    return http.client.HTTPSConnection(proc.host, proc.port, timeout=10, context=context)


def tls_get(proc: ServeProcess, context: ssl.SSLContext) -> int:
    conn = https(proc, context)
    try:
        conn.request("GET", "/v1/models")
        return conn.getresponse().status
    finally:
        conn.close()


def alpn(proc: ServeProcess, context: ssl.SSLContext) -> str | None:
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (socket.create_connection((proc.host, proc.port), timeout=10) as raw,
          context.wrap_socket(raw, server_hostname=proc.host) as tls):
        return tls.selected_alpn_protocol()


def test_reload_replaces_the_tls_certificate_for_new_connections(tmp_path: Path) -> None:
    """Renewed files in place (as certbot does) are picked up; a bad path is rejected."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    cert, key, trusts_a = make_certs(tmp_path / "a")
    cert_b, key_b, trusts_b = make_certs(tmp_path / "b")
    config, control = tmp_path / "config.toml", tmp_path / "control.sock"
    tls = f'[server.tls]\ncert_file = "{cert}"\nkey_file = "{key}"\n'
    config.write_text(BASE + tls + mock(["m"]))
    proc = ServeProcess(["serve", "--config", str(config), "--control-socket", str(control)],
                        home=tmp_path)
    try:
        assert proc.url.startswith("https://")
        assert tls_get(proc, trusts_a) == 200
        kept = https(proc, trusts_a)
        kept.request("GET", "/health")
        assert kept.getresponse().read()

        cert.write_bytes(cert_b.read_bytes())
        key.write_bytes(key_b.read_bytes())
        done = reload(control)
        assert done.returncode == 0, done.stderr
        assert "no changes; TLS certificate loaded again" in done.stdout
        assert tls_get(proc, trusts_b) == 200
        assert alpn(proc, trusts_b) == "h2"
        with pytest.raises(ssl.SSLCertVerificationError):
            tls_get(proc, trusts_a)
        kept.request("GET", "/health")  # an open connection keeps the certificate it was made with
        assert kept.getresponse().status == 200
        kept.close()

        config.write_text(BASE + tls.replace(str(cert), str(tmp_path / "missing.pem")) + mock(["m"]))
        rejected = reload(control)
        assert rejected.returncode == 1
        assert "server.tls.cert_file" in rejected.stderr and "missing.pem" in rejected.stderr
        assert tls_get(proc, trusts_b) == 200
    finally:
        assert proc.stop() == 0


def h2_max_streams(proc: ServeProcess) -> int:
    """SETTINGS_MAX_CONCURRENT_STREAMS a new h2c connection to ``proc`` is told."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    with socket.create_connection((proc.host, proc.port), timeout=10) as sock:
        sock.sendall(conn.data_to_send())
        for _ in range(20):  # bounded: the server's SETTINGS come first
            data = sock.recv(65536)
            assert data, "closed before SETTINGS"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    return int(conn.remote_settings.max_concurrent_streams)
    raise AssertionError("no SETTINGS from the server")


def test_reload_applies_server_http2_to_new_connections(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    control = tmp_path / "run" / "control.sock"
    config.write_text(BASE + "[server.http2]\nmax_concurrent_streams = 5\n" + mock(["m"]))
    proc = ServeProcess(["serve", "--config", str(config), "--control-socket", str(control)],
                        home=tmp_path)
    try:
        assert h2_max_streams(proc) == 5
        config.write_text(BASE + "[server.http2]\nmax_concurrent_streams = 7\n" + mock(["m"]))
        done = reload(control)
        assert done.returncode == 0, done.stderr
        assert "server.http2.max_concurrent_streams: 5 -> 7" in done.stdout
        assert "HTTP/2 settings apply to new connections" in done.stdout
        assert h2_max_streams(proc) == 7
    finally:
        assert proc.stop() == 0
