"""``modelmux doctor``: one line per check; exit 1 when any fails. Loopback servers only."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from modelmux import __version__
from tests.cli.helpers import run, service_account, user_config, write
from tests.e2e.proc import serve_config

MOCK = '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["m"]\n'


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback port with a listening socket (nothing else happens on it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TokenHandler(BaseHTTPRequestHandler):
    status = 200

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        body = json.dumps({"access_token": "ya29.doctor", "expires_in": 3600,
                           "token_type": "Bearer"} if self.status == 200
                          else {"error": "invalid_grant"}).encode()
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=[200, 400], ids=["token-ok", "token-refused"])
def token_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    handler = type("Handler", (TokenHandler,), {"status": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token", request.param
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def lines(output: str) -> dict[str, str]:
    """``what`` → ``status`` for each check line."""
    found = {}
    for line in output.splitlines():
        status, _, rest = line.partition("] ")
        found[rest.split(": ", 1)[0]] = status.strip("[ ")
    return found


def test_offline_zero_config(tmp_path: Path) -> None:
    out = run(tmp_path, "doctor", "--offline")
    checks = lines(out.stdout)
    assert out.returncode == 0, out.stdout
    assert checks["config"] == "ok" and checks["provider mock"] == "ok"
    assert checks["native build"] in ("ok", "warn") and checks["versions"] == "ok"
    assert "modelmux" in out.stdout and "Python" in out.stdout


def test_invalid_config_fails(tmp_path: Path) -> None:
    write(user_config(tmp_path), "[server]\nprot = 1\n")
    out = run(tmp_path, "doctor", "--offline")
    assert out.returncode == 1
    assert lines(out.stdout)["config"] == "FAIL" and "unknown field `prot`" in out.stdout


def test_port_in_use_fails(tmp_path: Path, listener: int) -> None:
    write(user_config(tmp_path), f"[server]\nport = {listener}\n"
          '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["m"]\n')
    out = run(tmp_path, "doctor", "--offline")
    assert out.returncode == 1 and lines(out.stdout)[f"port 127.0.0.1:{listener}"] == "FAIL"


def test_port_held_by_a_running_modelmux_is_reported_as_running(tmp_path: Path) -> None:
    proc = serve_config(tmp_path, MOCK, name="serving.toml")
    try:
        write(user_config(tmp_path), f'[server]\nhost = "127.0.0.1"\nport = {proc.port}\n' + MOCK)
        out = run(tmp_path, "doctor", "--offline")
    finally:
        assert proc.stop() == 0
    line = next(x for x in out.stdout.splitlines() if f"port 127.0.0.1:{proc.port}" in x)
    assert out.returncode == 0, out.stdout
    assert line == f"[ ok ] port 127.0.0.1:{proc.port}: modelmux {__version__} is running there " \
                   f"(pid {proc.proc.pid})"


def test_reachability(tmp_path: Path, listener: int) -> None:
    write(user_config(tmp_path), f"[server]\nport = 0\n"
          f'[[provider]]\nname = "up"\ntype = "openai_compatible"\nmodels = ["a"]\n'
          f'base_url = "http://127.0.0.1:{listener}/v1"\n'
          f'[[provider]]\nname = "down"\ntype = "openai_compatible"\nmodels = ["b"]\n'
          f'base_url = "http://127.0.0.1:{closed_port()}/v1"\n')
    out = run(tmp_path, "doctor")
    checks = lines(out.stdout)
    assert out.returncode == 1
    assert checks["provider up"] == "ok" and checks["provider down"] == "FAIL"
    assert checks["credentials up"] == "warn"  # no API key: fine for local servers
    offline = run(tmp_path, "doctor", "--offline")
    assert offline.returncode == 0 and lines(offline.stdout)["provider down"] == "skip"


def test_vertex_credentials_mint_a_token(tmp_path: Path, listener: int,
                                        token_server: tuple[str, int]) -> None:
    token_uri, status = token_server
    key = write(tmp_path / "sa.json", json.dumps(service_account(token_uri)))
    write(user_config(tmp_path), f'[server]\nport = 0\n[[provider]]\nname = "v"\ntype = "vertex"\n'
          f'project = "p"\nregion = "us-east5"\nmodels = ["m"]\n'
          f'base_url = "http://127.0.0.1:{listener}"\ncredentials_file = "{key}"\n')
    out = run(tmp_path, "doctor")
    checks = lines(out.stdout)
    assert checks["provider v"] == "ok"
    if status == 200:
        assert out.returncode == 0, out.stdout
        assert checks["credentials v"] == "ok" and "token minted" in out.stdout
    else:
        assert out.returncode == 1 and checks["credentials v"] == "FAIL"
    offline = run(tmp_path, "doctor", "--offline")
    assert lines(offline.stdout)["credentials v"] == "ok" and "no token minted" in offline.stdout


def test_openai_family_types_are_reached_and_their_keys_checked(tmp_path: Path,
                                                                listener: int) -> None:
    write(user_config(tmp_path), f"[server]\nport = 0\n"
          f'[[provider]]\nname = "az"\ntype = "azure"\nmodels = ["d"]\napi_key = "k"\n'
          f'api_version = "2024-10-21"\nbase_url = "http://127.0.0.1:{listener}"\n'
          f'[[provider]]\nname = "hf"\ntype = "huggingface"\nmodels = ["m"]\napi_key = ""\n'
          f'base_url = "http://127.0.0.1:{closed_port()}/v1"\n'
          f'[[provider]]\nname = "mi"\ntype = "azure"\nmodels = ["e"]\nentra_id = true\n'
          f'api_version = "v1"\nbase_url = "http://127.0.0.1:{listener}"\n')
    out = run(tmp_path, "doctor").stdout
    checks = lines(out)
    assert checks["provider az"] == "ok" and checks["credentials az"] == "ok"
    assert checks["credentials mi"] == "ok" and "Entra ID managed identity" in out
    assert checks["provider hf"] == "FAIL" and checks["credentials hf"] == "warn"


def test_bedrock_credentials_and_endpoint(tmp_path: Path, listener: int) -> None:
    table = ('[[provider]]\nname = "{n}"\ntype = "bedrock"\nregion = "us-east-1"\n'
             'models = ["m"]\nbase_url = "http://127.0.0.1:{p}"\n')
    write(user_config(tmp_path), "[server]\nport = 0\n" + table.format(n="br", p=listener))
    out = run(tmp_path, "doctor", AWS_ACCESS_KEY_ID="", AWS_PROFILE="").stdout
    assert lines(out)["provider br"] == "ok" and lines(out)["credentials br"] == "warn"
    write(tmp_path / ".aws/credentials", "[default]\naws_access_key_id = AKID\n"
          "aws_secret_access_key = s\n")
    out = run(tmp_path, "doctor", "--offline", AWS_ACCESS_KEY_ID="", AWS_PROFILE="").stdout
    assert lines(out)["credentials br"] == "ok" and "profile default" in out


def test_tokenizer_files_are_loaded(tmp_path: Path) -> None:
    from tests.messages.word_tokenizer import save_word_tokenizer

    good = save_word_tokenizer(tmp_path / "llama" / "tokenizer.json")
    bad = write(tmp_path / "bad" / "tokenizer.json", '{"version": "1.0"}')
    write(user_config(tmp_path), '[server]\nport = 0\n[[provider]]\nname = "local"\n'
          'type = "openai_compatible"\nmodels = ["a", "b"]\nbase_url = "http://127.0.0.1:9/v1"\n'
          f'[provider.tokenizer]\na = "{good}"\nb = "{bad}"\n')
    out = run(tmp_path, "doctor", "--offline")
    checks = lines(out.stdout)
    assert out.returncode == 1, out.stdout
    assert checks["tokenizer local/a"] == "ok" and f"{good} loads (3 tokens)" in out.stdout
    assert checks["tokenizer local/b"] == "FAIL"
    assert f"{bad}: not a Hugging Face tokenizer.json" in out.stdout
