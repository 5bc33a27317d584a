"""nginx for ``macro.py``: the static mock upstream and the reference reverse proxy.

The mock answers every POST on one port with ModelMux's own mock JSON completion, on a second
port with its 100-chunk SSE stream and on a third with an Anthropic Messages stream (bodies captured from ``modelmux serve`` once, then served by
``return 200``), so the upstream costs nginx's few microseconds per request instead of a Python
process's. The reference proxy is a plain ``proxy_pass`` with upstream keep-alive.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import time
from pathlib import Path

from modelmux.bench.local import ServeProcess, StartError, mock_config
from modelmux.bench.wire import chat_body

HEAD = """worker_processes 1;
master_process off;
daemon off;
error_log {tmp}/{name}-error.log warn;
pid {tmp}/{name}.pid;
events {{ worker_connections 4096; }}
http {{
    access_log {access_log};
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/{name}-body;
    proxy_temp_path {tmp}/{name}-proxy;
    fastcgi_temp_path {tmp}/{name}-fastcgi;
    uwsgi_temp_path {tmp}/{name}-uwsgi;
    scgi_temp_path {tmp}/{name}-scgi;
{servers}
}}
"""
MOCK_SERVER = """    server {{
        listen 127.0.0.1:{port};
        root {tmp};
        location / {{
            default_type {kind};
            rewrite ^ /{file} break;
            error_page 405 =200 $uri;
        }}
    }}
"""
PROXY_SERVER = """    upstream up{port} {{ server 127.0.0.1:{upstream}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://up{port};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
"""


def binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    """Raises: StartError: nothing listens on ``port`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise StartError(f"nothing listens on port {port} after {timeout} s")


def _post(url: str, stream: bool) -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("POST", "/v1/chat/completions", body=chat_body("mock", 100, stream),
                     headers={"content-type": "application/json"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise StartError(f"the mock answered {response.status} while capturing its bodies")
    return body


def capture_bodies(tmp: Path, chunks: int = 100) -> tuple[bytes, bytes]:
    """ModelMux's mock answer as one JSON body and as a ``chunks``-chunk SSE stream."""
    mock = ServeProcess("capture", mock_config("mock", chunks), tmp)
    try:
        return _post(mock.url, False), _post(mock.url, True)
    finally:
        mock.stop()


def start(name: str, servers: str, ports: list[int], tmp: Path,
          pin: list[str], access_log: bool = False) -> subprocess.Popen[bytes] | str:
    """nginx with ``servers`` (``server`` blocks), pinned by ``pin``; the process, or why not.

    ``access_log`` writes nginx's default access log (combined format, one write a request) to
    a file in ``tmp``, as its stock configuration does; off otherwise.
    """
    path = binary()
    if path is None:
        return "nginx is not installed (apt-get install -y nginx)"
    conf = tmp / f"{name}.conf"
    log = f"{tmp}/{name}-access.log" if access_log else "off"
    conf.write_text(HEAD.format(tmp=tmp, name=name, servers=servers, access_log=log))
    proc = subprocess.Popen([*pin, path, "-p", str(tmp), "-c", str(conf)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for port in ports:
            wait_port(port)
    except StartError as exc:
        proc.kill()
        proc.wait()
        return str(exc)
    return proc


def mock_servers(entries: list[tuple[int, str, str, bytes]], tmp: Path) -> str:
    """``server`` blocks answering every request with a fixed body read from a file.

    ``entries``: (port, content type, file name, body) each.
    """
    blocks = []
    for port, kind, name, body in entries:
        (tmp / name).write_bytes(body)
        blocks.append(MOCK_SERVER.format(port=port, kind=kind, file=name, tmp=tmp))
    return "".join(blocks)


def proxy_servers(pairs: list[tuple[int, int]]) -> str:
    """``proxy_pass`` blocks: (listen port, upstream port) each."""
    return "".join(PROXY_SERVER.format(port=port, upstream=up) for port, up in pairs)
