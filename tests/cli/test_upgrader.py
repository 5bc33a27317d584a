"""The old server's side of ``modelmux upgrade``, without processes: the successor's command line
and the warning a successor gives when the config asks for another address."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from modelmux.cli.serve import _warn_if_moved
from modelmux.cli.upgrader import successor_command
from modelmux.config.schema import Config, ServerConfig


def test_successor_runs_the_installed_script_with_the_same_arguments(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "modelmux"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(script), "serve", "--config", "c.toml",
                                      "--upgrade-from", "/old.sock", "--upgrade-from=/older.sock"])
    assert successor_command(Path("/run/ctl.sock")) == [
        str(script), "serve", "--config", "c.toml", "--upgrade-from", "/run/ctl.sock"]


def test_successor_under_python_m_runs_the_module_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/src/modelmux/__main__.py", "--port", "8080"])
    assert successor_command(Path("/c.sock")) == [
        sys.executable, "-m", "modelmux", "--port", "8080", "--upgrade-from", "/c.sock"]


@pytest.mark.parametrize(("host", "port", "warns"), [
    ("127.0.0.1", 3000, False), ("localhost", 3000, False), ("0.0.0.0", 3000, False),
    ("127.0.0.1", 0, False), ("127.0.0.1", 8080, True), ("10.1.2.3", 3000, True),
])
def test_successor_warns_when_the_config_moved_the_address(host: str, port: int, warns: bool,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    config = Config(server=ServerConfig(host=host, port=port))
    with caplog.at_level(logging.WARNING):
        _warn_if_moved(config, [("127.0.0.1", 3000)])
    assert ("restart to move" in caplog.text) is warns
