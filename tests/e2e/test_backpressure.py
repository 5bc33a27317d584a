"""A slow client pauses the producer: streaming 200 MB keeps the server's memory bounded."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.e2e.proc import ServeProcess

STREAM_BYTES = 200 * 1000 * 1000
PIECE = 1000
RSS_GROWTH_BOUND = 40 * 1024 * 1024


@pytest.mark.slow
def test_200mb_stream_to_a_slow_reader_keeps_rss_bounded(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    chunks = STREAM_BYTES // PIECE
    config.write_text(
        "[server]\nport = 0\n"
        '[[provider]]\nname = "big"\ntype = "mock"\nmodels = ["big"]\n'
        f'text = "{"x" * PIECE}"\nrepeat = {chunks}\nchunks = {chunks}\n'
    )
    proc = ServeProcess(["serve", "--config", str(config)], home=tmp_path)
    try:
        body = json.dumps({"model": "big", "stream": True,
                           "messages": [{"role": "user", "content": "flood me"}]}).encode()
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.settimeout(30)
            sock.connect((proc.host, proc.port))
            baseline = proc.rss_bytes()
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            received = 0
            peak = baseline
            tail = b""
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                piece = sock.recv(65536)
                if not piece:
                    break
                received += len(piece)
                tail = (tail + piece)[-64:]
                if tail.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n"):
                    break
                if received % 32 == 0 or len(piece) < 65536:
                    peak = max(peak, proc.rss_bytes())
                time.sleep(0.0005)  # read slower than the server can produce
            peak = max(peak, proc.rss_bytes())
        assert received > STREAM_BYTES, f"stream ended early after {received} bytes"
        assert peak - baseline < RSS_GROWTH_BOUND, f"RSS grew by {(peak - baseline) / 2**20:.1f} MiB"
    finally:
        assert proc.stop() == 0
