"""Who owns the default control socket when servers share a home: real ``modelmux serve`` processes."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

from tests.cli.helpers import run
from tests.e2e.proc import LOOPBACK_SERVER, ServeProcess

MOCK = '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["mock"]\n'


def serve(home: Path, name: str = "config.toml", server: str = LOOPBACK_SERVER) -> ServeProcess:
    """``modelmux serve`` with ``home`` as HOME and ``home/run`` as XDG_RUNTIME_DIR."""
    config = home / name
    config.write_text(server + MOCK)
    return ServeProcess(["serve", "--config", str(config)], home=home,
                        env={"XDG_RUNTIME_DIR": str(home / "run")})


def healthy(proc: ServeProcess) -> bool:
    """One answered request: the server is past its start-up (its stop signals are handled)."""
    with urllib.request.urlopen(f"{proc.url}/health", timeout=10) as response:
        return response.status == 200


def control_socket(home: Path) -> Path:
    return home / "run" / "modelmux" / "control.sock"


def reload(home: Path) -> tuple[int, str]:
    """``modelmux reload`` finding the socket as a user would (no ``--control-socket``)."""
    result = run(home, "reload", XDG_RUNTIME_DIR=str(home / "run"))
    return result.returncode, result.stdout + result.stderr


def test_second_server_leaves_a_live_control_socket_to_the_first(tmp_path: Path) -> None:
    first = serve(tmp_path)
    try:
        control = control_socket(tmp_path)
        owned = control.stat().st_ino
        second = serve(tmp_path, "second.toml")
        try:
            assert healthy(second) and second.wait_for_log("another server listens there")
            assert control.stat().st_ino == owned
        finally:
            assert second.stop() == 0
        assert control.is_socket() and control.stat().st_ino == owned
        code, output = reload(tmp_path)
        assert code == 0 and "reloaded" in output
        assert first.wait_for_log("reload")
    finally:
        assert first.stop() == 0
    assert not control.exists()


def test_server_that_cannot_bind_its_port_leaves_the_control_socket_alone(tmp_path: Path) -> None:
    first = serve(tmp_path)
    try:
        control = control_socket(tmp_path)
        owned = control.stat().st_ino
        config = tmp_path / "taken.toml"
        config.write_text(f'[server]\nhost = "127.0.0.1"\nport = {first.port}\n' + MOCK)
        result = run(tmp_path, "serve", "--config", str(config), XDG_RUNTIME_DIR=str(tmp_path / "run"))
        assert result.returncode == 1 and "cannot listen" in result.stderr
        assert control.stat().st_ino == owned
        code, output = reload(tmp_path)
        assert code == 0 and "reloaded" in output
    finally:
        assert first.stop() == 0


def test_stale_control_socket_is_replaced(tmp_path: Path) -> None:
    control = control_socket(tmp_path)
    control.parent.mkdir(parents=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(control))  # closed without unlinking: a crashed server's leftover
    proc = serve(tmp_path)
    try:
        assert proc.wait_for_log(f"control socket {control}")
        code, output = reload(tmp_path)
        assert code == 0 and "reloaded" in output
    finally:
        assert proc.stop() == 0
