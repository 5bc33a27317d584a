"""The systemd units: the 1.x packaging bugs stay fixed, and systemd accepts the files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modelmux.config.schema import ServerConfig
from tests.packaging.helpers import PACKAGING, clean_env, require_tool, run
from tests.packaging.units import one, parse_unit, values, verify, with_exec_start_binary

SYSTEM_UNIT = PACKAGING / "systemd" / "modelmux.service"
USER_UNIT = PACKAGING / "systemd" / "modelmux-user.service"


def test_system_unit_runs_the_configured_server_unprivileged_and_sandboxed() -> None:
    unit = parse_unit(SYSTEM_UNIT)
    assert one(unit, "Service", "ExecStart") == "/usr/bin/modelmux serve --config /etc/modelmux/config.toml"
    assert one(unit, "Service", "User") == "modelmux"
    assert one(unit, "Service", "ProtectSystem") == "strict"
    assert one(unit, "Service", "NoNewPrivileges") == "true"
    assert one(unit, "Service", "PrivateTmp") == "true"
    assert one(unit, "Service", "Restart") == "on-failure"
    assert one(unit, "Install", "WantedBy") == "multi-user.target"
    assert one(unit, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"


def test_system_unit_cannot_restart_loop_unconfigured_or_misconfigured() -> None:
    """1.x: the .deb enabled a unit with no config, which then failed every 5 s forever."""
    unit = parse_unit(SYSTEM_UNIT)
    assert one(unit, "Unit", "ConditionPathExists") == "/etc/modelmux/config.toml"
    assert "2" in one(unit, "Service", "RestartPreventExitStatus").split(), "exit 2 = invalid config"


def test_system_unit_needs_no_preexisting_writable_directory() -> None:
    """1.x: ProtectSystem=strict plus a config dir in /root that had to exist already."""
    unit = parse_unit(SYSTEM_UNIT)
    assert not values(unit, "Service", "ReadWritePaths")
    assert one(unit, "Service", "StateDirectory") == "modelmux"  # created by systemd, owned by the user
    assert one(unit, "Service", "WorkingDirectory") == "/var/lib/modelmux"
    assert one(unit, "Service", "ProtectHome") == "true"


def test_system_unit_gives_the_drain_time_to_finish() -> None:
    unit = parse_unit(SYSTEM_UNIT)
    assert one(unit, "Service", "KillSignal") == "SIGTERM"
    assert float(one(unit, "Service", "TimeoutStopSec")) > ServerConfig().drain_timeout


def test_user_unit_finds_the_command_without_systemd_search_path() -> None:
    """1.x: a bare ``ExecStart=modelmux`` that systemd never looks for in ~/.local/bin."""
    unit = parse_unit(USER_UNIT)
    exec_start = one(unit, "Service", "ExecStart").split()
    assert exec_start[0] == "/usr/bin/env" and exec_start[1:] == ["modelmux", "serve"]
    (path,) = [v for v in values(unit, "Service", "Environment") if v.startswith("PATH=")]
    assert path.removeprefix("PATH=").split(":")[:4] == ["%h/.local/bin", "/usr/local/bin", "/usr/bin", "/bin"]


def test_user_unit_follows_the_config_search_order_and_does_not_loop() -> None:
    unit = parse_unit(USER_UNIT)
    assert values(unit, "Unit", "ConditionPathExists") == [
        "|%E/modelmux/config.toml",
        "|/etc/modelmux/config.toml",
    ]
    assert one(unit, "Service", "Restart") == "on-failure"
    assert "2" in one(unit, "Service", "RestartPreventExitStatus").split()
    assert one(unit, "Service", "NoNewPrivileges") == "true"
    assert not values(unit, "Service", "User")
    assert one(unit, "Install", "WantedBy") == "default.target"


def test_systemd_analyze_verify_system_unit(tmp_path: Path) -> None:
    require_tool("systemd-analyze")
    verify(with_exec_start_binary(SYSTEM_UNIT, sys.executable, tmp_path), user=False, runtime_dir=tmp_path)


def test_systemd_analyze_verify_user_unit(tmp_path: Path) -> None:
    require_tool("systemd-analyze")
    copy = tmp_path / "modelmux.service"  # the name it is installed under
    copy.write_text(USER_UNIT.read_text())
    verify(copy, user=True, runtime_dir=tmp_path)


def test_system_unit_sandbox_scores_ok(tmp_path: Path) -> None:
    """``systemd-analyze security``: overall exposure at most 2.0 ("OK") on its 0-10 scale."""
    require_tool("systemd-analyze")
    unit = with_exec_start_binary(SYSTEM_UNIT, sys.executable, tmp_path)
    proc = run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(unit)],
               check=False, env=clean_env(XDG_RUNTIME_DIR=str(tmp_path)))
    if "Unknown option" in proc.stderr or "unrecognized option" in proc.stderr:
        pytest.skip("this systemd-analyze has no offline security review")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_units_let_systemd_follow_an_upgrade() -> None:
    """``Type=notify``: READY=1 when serving, and MAINPID= from the old process when
    ``modelmux upgrade`` hands over, so the service stays up while the main pid changes."""
    for path in (SYSTEM_UNIT, USER_UNIT):
        unit = parse_unit(path)
        assert one(unit, "Service", "Type") == "notify"
        assert one(unit, "Service", "NotifyAccess") == "main"
        assert one(unit, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
