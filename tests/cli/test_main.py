"""``modelmux --version``, ``--help`` (1.x's headings), every command's help, usage errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelmux import __version__
from tests.cli.helpers import run

COMMANDS = [["serve"], ["config"], ["config", "init"], ["config", "show"], ["config", "validate"],
            ["config", "edit"], ["config", "migrate"], ["doctor"], ["logs"], ["validate"]]


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(tmp_path: Path, flag: str) -> None:
    out = run(tmp_path, flag)
    assert out.returncode == 0
    assert re.match(r"^modelmux \d+\.\d+\.\d+", out.stdout)
    assert out.stdout.startswith(f"modelmux {__version__} (")


def test_help_has_1x_headings(tmp_path: Path) -> None:
    out = run(tmp_path, "--help")
    assert out.returncode == 0
    for heading in ("USAGE", "OPTIONS", "COMMANDS", "ENVIRONMENT VARIABLES", "EXAMPLES",
                    "EXIT CODES"):
        assert heading in out.stdout
    for command in ("serve", "config", "doctor", "logs", "validate"):
        assert re.search(rf"^  {command} ", out.stdout, re.MULTILINE)
    assert "GCP_SERVICE_ACCOUNT_KEY" in out.stdout and "VERTEX_PROJECT" in out.stdout
    assert "USAGE" in run(tmp_path, "-h").stdout


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_examples(tmp_path: Path, command: list[str]) -> None:
    out = run(tmp_path, *command, "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("USAGE: modelmux") and "EXAMPLES:" in out.stdout
    assert "OPTIONS:" in out.stdout


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run(tmp_path, "frobnicate").returncode == 2
    missing = run(tmp_path, "config")
    assert missing.returncode == 2 and "missing SUBCOMMAND" in missing.stderr
    assert run(tmp_path, "serve", "--port", "http").returncode == 2
