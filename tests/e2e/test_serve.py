"""``modelmux serve`` as a real process: the zero-config default, the front door, the SDK, signals."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from modelmux import __version__
from tests.e2e.proc import ServeProcess

CONFIG = """
[server]
host = "127.0.0.1"
port = 0

[server.cors]
allow_origins = ["https://app.example"]

[[provider]]
name = "demo"
type = "mock"
models = ["mock", "mock-usage"]
text = "abcdefghij"
repeat = 3
chunks = 6
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    home = tmp_path_factory.mktemp("home")
    config = home / "config.toml"
    config.write_text(CONFIG)
    proc = ServeProcess(["serve", "--config", str(config), "--loop", "uvloop"], home=home)
    yield proc
    assert proc.stop() == 0


def request(server: ServeProcess, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def client(server: ServeProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=10)


def test_start_up_log_names_the_http1_backend(server: ServeProcess) -> None:
    # CI runs this file again with MODELMUX_SERVER_HTTP1=h11: this proves that leg runs h11.
    expected = os.environ.get("MODELMUX_SERVER_HTTP1", "fast")
    assert server.wait_for_log(f"HTTP/1.1 backend: {expected}")


def test_openai_sdk_non_stream(server: ServeProcess) -> None:
    with client(server) as sdk:
        completion = sdk.chat.completions.create(
            model="mock", messages=[{"role": "user", "content": "Say hi"}]
        )
    assert completion.object == "chat.completion"
    assert completion.model == "mock"
    assert completion.id.startswith("chatcmpl-")
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "abcdefghij" * 3
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_openai_sdk_stream_with_usage(server: ServeProcess) -> None:
    with client(server) as sdk:
        stream = sdk.chat.completions.create(
            model="mock", messages=[{"role": "user", "content": "Say hi"}], stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    assert len({c.id for c in chunks}) == 1 and len({c.created for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "abcdefghij" * 3
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


def test_stream_is_sse_ending_with_done(server: ServeProcess) -> None:
    body = json.dumps({"model": "mock", "messages": [{"role": "user", "content": "x"}], "stream": True})
    status, headers, raw = request(server, "POST", "/v1/chat/completions", body.encode(),
                                   {"content-type": "application/json"})
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    events = raw.split(b"\n\n")
    assert events[-2] == b"data: [DONE]" and events[-1] == b""
    assert all(e.startswith(b"data: ") for e in events[:-1])
    # six content pieces plus the role chunk and the finish chunk
    assert len(events) - 2 == 6 + 2


def test_models_health_and_request_id(server: ServeProcess) -> None:
    status, headers, body = request(server, "GET", "/v1/models")
    assert status == 200
    listing = json.loads(body)
    assert listing["object"] == "list"
    assert [m["id"] for m in listing["data"]] == ["mock", "mock-usage"]
    assert all(m["object"] == "model" and m["owned_by"] == "demo" for m in listing["data"])
    assert len(headers["x-request-id"]) == 32
    status, headers, body = request(server, "GET", "/health", headers={"x-request-id": "trace-123"})
    assert status == 200 and headers["x-request-id"] == "trace-123"
    health = json.loads(body)
    assert health["status"] == "ok" and health["version"] == __version__
    status, _, body = request(server, "HEAD", "/health")
    assert status == 200 and body == b""


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b"{", None, "invalid_json"),
        (b"", None, "invalid_json"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model", "invalid_value"),
        (b'{"model": 5, "messages": []}', "model", "invalid_value"),
        (b'{"model": "mock", "messages": []}', "messages", "invalid_value"),
        (b'{"model": "mock", "messages": [{"role": "robot", "content": "x"}]}', "messages[0].role", "invalid_value"),
        (b'{"model": "mock", "messages": [{"role": "user"}]}', "messages[0].content", "invalid_value"),
        (b'{"model": "mock", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream",
         "invalid_value"),
    ],
)
def test_bad_chat_requests_get_400_naming_the_field(server: ServeProcess, body: bytes, param: str | None,
                                                    code: str) -> None:
    status, headers, raw = request(server, "POST", "/v1/chat/completions", body,
                                   {"content-type": "application/json"})
    assert status == 400 and headers["content-type"] == "application/json"
    error = json.loads(raw)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param and error["code"] == code
    assert isinstance(error["message"], str) and error["message"]


def test_unknown_model_is_404_model_not_found(server: ServeProcess) -> None:
    with client(server) as sdk, pytest.raises(openai.NotFoundError) as info:
        sdk.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"
    with client(server) as sdk:
        completion = sdk.chat.completions.create(model="demo/anything", messages=[{"role": "user", "content": "x"}])
    assert completion.model == "demo/anything"


def test_unknown_path_and_wrong_method(server: ServeProcess) -> None:
    status, _, raw = request(server, "GET", "/v1/nothing")
    assert status == 404 and json.loads(raw)["error"]["code"] == "unknown_url"
    status, headers, raw = request(server, "GET", "/v1/chat/completions")
    assert status == 405 and json.loads(raw)["error"]["code"] == "method_not_allowed"
    assert headers["allow"] == "POST, OPTIONS"


def test_cors_preflight_and_response_headers(server: ServeProcess) -> None:
    status, headers, _ = request(server, "OPTIONS", "/v1/chat/completions", headers={
        "origin": "https://app.example", "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, x-stainless-os, x-evil"})
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"] == "authorization, content-type, x-stainless-os"
    status, headers, _ = request(server, "OPTIONS", "/v1/messages", headers={
        "origin": "https://app.example", "access-control-request-method": "POST",
        "access-control-request-headers": "x-api-key, anthropic-version, anthropic-beta, "
                                          "anthropic-dangerous-direct-browser-access"})
    assert status == 204
    assert headers["access-control-allow-headers"] == (
        "x-api-key, anthropic-version, anthropic-beta, anthropic-dangerous-direct-browser-access")
    status, headers, _ = request(server, "GET", "/v1/models", headers={"origin": "https://app.example"})
    assert status == 200 and headers["access-control-allow-origin"] == "https://app.example"
    assert "x-ratelimit-remaining-requests" in headers["access-control-expose-headers"]
    status, headers, _ = request(server, "GET", "/v1/models", headers={"origin": "https://evil.example"})
    assert status == 200 and "access-control-allow-origin" not in headers


def test_zero_config_default_names_the_next_step(tmp_path: Path) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 3000))
        except OSError:
            pytest.skip("port 3000 is in use on this machine")
    proc = ServeProcess([], home=tmp_path)  # bare `modelmux`, no config anywhere
    try:
        assert proc.url == "http://127.0.0.1:3000"
        first = proc.lines[0]
        assert "no config file found" in first and "mock" in first and "modelmux config init" in first
        with openai.OpenAI(base_url=proc.url + "/v1", api_key="x", max_retries=0, timeout=10) as sdk:
            reply = sdk.chat.completions.create(model="mock", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
    finally:
        assert proc.stop(signal.SIGINT) == 0
    assert any("stopped" in line for line in proc.lines)


def test_invalid_config_exits_2_with_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nprot = 1\n")
    try:
        ServeProcess(["serve", "--config", str(config)], home=tmp_path)
    except RuntimeError as exc:
        assert "unknown field `prot`" in str(exc)
    else:
        raise AssertionError("server started on an invalid config")


def test_version_names_the_implementation() -> None:
    import subprocess

    from tests.e2e.proc import modelmux_command

    out = subprocess.run([*modelmux_command(), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert out.stdout.startswith(f"modelmux {__version__} (")
    assert "native" in out.stdout or "pure-python" in out.stdout


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[server]\nhost = "192.0.2.1"\nport = 1\n'
                      '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["mock"]\n')
    proc = ServeProcess(["serve", "--config", str(config), "--host", "127.0.0.1", "--port", "0"], home=tmp_path)
    try:
        assert proc.host == "127.0.0.1" and proc.port not in (0, 1)
        assert request(proc, "GET", "/health")[0] == 200
    finally:
        assert proc.stop() == 0


def test_sigterm_lets_an_in_flight_stream_finish(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[server]\nport = 0\ndrain_timeout = 20\n'
                      '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["slow"]\n'
                      'text = "tick "\nrepeat = 20\nchunks = 20\nchunk_delay_ms = 50\n')
    proc = ServeProcess(["serve", "--config", str(config), "--loop", "asyncio"], home=tmp_path)
    try:
        with openai.OpenAI(base_url=proc.url + "/v1", api_key="x", max_retries=0, timeout=20) as sdk:
            stream = sdk.chat.completions.create(model="slow", messages=[{"role": "user", "content": "go"}],
                                                 stream=True)
            first = next(iter(stream))
            assert first.choices[0].delta.role == "assistant"
            proc.proc.send_signal(signal.SIGTERM)
            assert proc.wait_for_log("shutting down")
            with pytest.raises(OSError):  # no new connections while draining
                socket.create_connection((proc.host, proc.port), timeout=2).close()
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "tick " * 20
    finally:
        assert proc.stop() == 0


@pytest.mark.parametrize("workers", [None, "2"])
def test_signals_right_after_the_ready_line_are_handled(tmp_path: Path, workers: str | None) -> None:
    """The signal handlers are in place before the server says it listens: a SIGHUP sent at
    once reloads, and a stop sent at once is a graceful exit 0, not death by the default action."""
    args = ["serve", "--port", "0", *(["--workers", workers] if workers else [])]
    proc = ServeProcess(args, home=tmp_path)
    proc.proc.send_signal(signal.SIGHUP)
    assert proc.wait_for_log("reload"), "\n".join(proc.lines)
    assert proc.proc.poll() is None
    assert proc.stop() == 0, "\n".join(proc.lines)
