"""Tracing off costs no import; tracing on without the ``otel`` extra is a config error.

These run whether or not the extra is installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelmux.config import extras
from modelmux.config.env import environment_layer
from modelmux.config.problems import ConfigError
from modelmux.config.schema import TelemetryConfig
from modelmux.config.validate import check_config
from modelmux.observability import tracing


def test_no_opentelemetry_import_when_off() -> None:
    code = ("import sys\n"
            "import modelmux.cli.main, modelmux.cli.serve, modelmux.providers.registry\n"
            "from modelmux.api.app import App\n"
            "from modelmux.config.schema import default_config\n"
            "app = App(default_config())\n"
            "assert app.tracer is None and app.watcher is None\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
            "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_enabled_without_the_extra_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extras, "EXTRA_MODULES", ("opentelemetry_not_installed_here.trace",))
    problems = check_config({"telemetry": {"enabled": True}}, {})
    assert [(p.path, "modelmux[otel]" in p.message) for p in problems if not p.warning] == \
        [(("telemetry", "enabled"), True)]
    with pytest.raises(ConfigError, match=r"pip install 'modelmux\[otel\]'"):
        tracing.build_tracer(TelemetryConfig(enabled=True), "2.0.0")
    assert check_config({"telemetry": {"enabled": False}}, {}) == check_config({}, {})


def test_telemetry_settings_have_environment_variables() -> None:
    layer, problems = environment_layer({"MODELMUX_TELEMETRY_ENABLED": "on",
                                         "MODELMUX_TELEMETRY_SAMPLE_RATIO": "0.25"})
    assert problems == []
    assert layer.data == {"telemetry": {"enabled": True, "sample_ratio": 0.25}}


BLOCK_OTEL = """
import importlib.abc, sys

class NoOtel(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NoOtel())
from modelmux.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_serve_refuses_to_start_when_the_extra_is_missing(tmp_path: Path) -> None:
    """As on a machine without ``modelmux[otel]``: exit 2 with the install hint, nothing bound."""
    config = tmp_path / "config.toml"
    config.write_text('[server]\nhost = "127.0.0.1"\nport = 0\n'
                      '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["mock"]\n'
                      '[telemetry]\nenabled = true\n')
    done = subprocess.run([sys.executable, "-c", BLOCK_OTEL, "serve", "--config", str(config),
                           "--control-socket", "off"], capture_output=True, text=True, check=False,
                          timeout=60, env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 2, done.stderr
    assert f"{config}:9: telemetry.enabled: tracing needs the otel extra" in done.stderr
    assert "pip install 'modelmux[otel]'" in done.stderr
    assert "listening on" not in done.stderr
