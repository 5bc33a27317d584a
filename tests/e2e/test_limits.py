"""Limits and malformed input against a real ``modelmux serve`` process, over raw sockets."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.proc import ServeProcess

TIMEOUT = 10.0
CHAT = b'{"model": "mock", "messages": [{"role": "user", "content": "hi"}]}'


def serve_with(home: Path, server_table: str) -> ServeProcess:
    config = home / "config.toml"
    config.write_text(f"[server]\nport = 0\n{server_table}\n"
                      '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["mock"]\n')
    return ServeProcess(["serve", "--config", str(config)], home=home)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    proc = serve_with(tmp_path_factory.mktemp("limits"),
                      "max_body_bytes = 1048576\nheader_timeout = 0.5\nbody_timeout = 0.5\n"
                      "keepalive_timeout = 0.5\n")
    yield proc
    assert proc.stop() == 0


def connect(proc: ServeProcess) -> socket.socket:
    sock = socket.create_connection((proc.host, proc.port), timeout=TIMEOUT)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            raise ConnectionError(f"closed before a response head: {data!r}")
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        rest += piece
    return int(lines[0].split()[1]), headers, rest[:length]


def is_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def assert_openai_error(body: bytes, code: str) -> None:
    error = json.loads(body)["error"]
    assert error["code"] == code
    assert set(error) == {"message", "type", "code", "param"}


def test_request_head_over_64k_gets_431(server: ServeProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n")
        status, headers, body = read_response(sock)
        assert status == 431 and headers["connection"] == "close"
        assert_openai_error(body, "request_header_fields_too_large")
        assert is_closed(sock)


def test_declared_body_over_limit_gets_413_without_reading_it(server: ServeProcess) -> None:
    with connect(server) as sock:
        # Only the head is sent: the answer must not wait for the 2 MiB body.
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 2097152\r\n\r\n")
        status, headers, body = read_response(sock)
        assert status == 413 and headers["connection"] == "close"
        assert_openai_error(body, "request_too_large")
        assert is_closed(sock)


def test_expect_continue_over_limit_gets_413_and_no_100(server: ServeProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 2097152\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        status, _, _ = read_response(sock)
        assert status == 413


def test_chunked_body_over_limit_gets_413(server: ServeProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = b"x" * 65536
        frame = b"%x\r\n%s\r\n" % (len(piece), piece)
        try:
            for _ in range(40):  # 2.5 MiB offered; the server stops reading after 1 MiB
                sock.sendall(frame)
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, _, body = read_response(sock)
        assert status == 413
        assert_openai_error(body, "request_too_large")


def test_expect_100_continue_within_limit(server: ServeProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
                     b"Expect: 100-continue\r\n\r\n" % len(CHAT))
        status, _, _ = read_response(sock)
        assert status == 100
        sock.sendall(CHAT)
        status, _, body = read_response(sock)
        assert status == 200 and json.loads(body)["object"] == "chat.completion"


def test_stalled_request_head_gets_408_and_close(server: ServeProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n")  # and then nothing
        status, headers, body = read_response(sock)
        assert status == 408 and headers["connection"] == "close"
        assert_openai_error(body, "request_timeout")
        assert is_closed(sock)


def test_stalled_request_body_gets_408(server: ServeProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{\"mod")
        status, _, body = read_response(sock)
        assert status == 408
        assert_openai_error(body, "request_timeout")


def test_idle_keep_alive_connection_is_closed(server: ServeProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        status, _, _ = read_response(sock)
        assert status == 200
        assert is_closed(sock)  # after keepalive_timeout, with no bytes sent


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost t\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: t\r\n\r\n",
    ],
    ids=["request-line", "header-line", "content-length", "two-lengths", "no-host", "te-gzip",
         "chunk-size", "nul-in-target"],
)
def test_malformed_requests_get_4xx_and_close_while_others_are_served(server: ServeProcess, raw: bytes) -> None:
    with connect(server) as bystander, connect(server) as sock:
        sock.sendall(raw)
        status, headers, body = read_response(sock)
        assert status in (400, 501) and headers["connection"] == "close"
        assert json.loads(body)["error"]["type"] == "invalid_request_error"
        assert is_closed(sock)
        bystander.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(bystander)[0] == 200
    assert server.proc.poll() is None


def test_max_connections_refuses_with_503(tmp_path: Path) -> None:
    proc = serve_with(tmp_path, "max_connections = 3\n")
    held: list[socket.socket] = []
    try:
        for _ in range(3):
            sock = connect(proc)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_response(sock)[0] == 200  # the connection is established and counted
            held.append(sock)
        with connect(proc) as extra:
            status, headers, body = read_response(extra)
            assert status == 503 and headers["connection"] == "close"
            assert_openai_error(body, "too_many_connections")
        held.pop().close()
        for _ in range(50):  # the server notices the close asynchronously; bounded retries
            try:
                with connect(proc) as again:
                    again.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
                    if read_response(again)[0] == 200:
                        break
            except OSError:  # refused with 503 and closed before our request was written
                continue
        else:
            raise AssertionError("a freed connection slot was never reused")
    finally:
        for sock in held:
            sock.close()
        assert proc.stop() == 0
