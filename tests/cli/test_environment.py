"""The environment as the CLI sees it: a ``MODELMUX_*`` variable that is no setting is reported
(serve's log at start, ``modelmux config validate``); contradictory build switches stop every
command, and doctor names them."""

from __future__ import annotations

from pathlib import Path

from modelmux._accel import CONFLICT
from tests.cli.helpers import run
from tests.e2e.proc import LOOPBACK_SERVER, ServeProcess
from tests.e2e.test_reload_reports import health

TYPO = "environment MODELMUX_SEVER_PORT: not a ModelMux setting; ignored " \
       "(did you mean MODELMUX_SERVER_PORT?)"


def test_serve_logs_an_unknown_variable_at_start(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(LOOPBACK_SERVER + '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["m"]\n')
    proc = ServeProcess(["serve", "--config", str(config), "--control-socket", "off"],
                        env={"MODELMUX_SEVER_PORT": "3001"}, home=tmp_path)
    try:
        assert any(TYPO in line for line in proc.lines), "\n".join(proc.lines)
        assert health(proc)["status"] == "ok"  # serving (and its signal handlers are set)
    finally:
        assert proc.stop() == 0


def test_config_validate_prints_an_unknown_variable(tmp_path: Path) -> None:
    out = run(tmp_path, "config", "validate", MODELMUX_SEVER_PORT="3001")
    assert out.returncode == 0 and TYPO in out.stderr, out.stderr


def test_build_switches_and_healthcheck_url_do_not_warn(tmp_path: Path) -> None:
    out = run(tmp_path, "config", "validate", MODELMUX_HEALTHCHECK_URL="http://127.0.0.1:3000/health")
    assert out.returncode == 0 and "MODELMUX_" not in out.stderr, out.stderr


def test_contradictory_build_switches_stop_serve(tmp_path: Path) -> None:
    out = run(tmp_path, "serve", "--port", "0", MODELMUX_PURE_PYTHON="1", MODELMUX_REQUIRE_NATIVE="1")
    assert out.returncode == 2 and "modelmux: " + CONFLICT in out.stderr, out.stderr
    assert "listening on" not in out.stderr and "Traceback" not in out.stderr


def test_doctor_names_contradictory_build_switches(tmp_path: Path) -> None:
    out = run(tmp_path, "doctor", "--offline", MODELMUX_PURE_PYTHON="1", MODELMUX_REQUIRE_NATIVE="1")
    assert out.returncode == 1
    assert f"[FAIL] native build: {CONFLICT}" in out.stdout.splitlines(), out.stdout
