"""``ConfigError.log``: a headline with the count, then one log record per problem, so no
record carries the newline-joined list (the log escapes newlines into one long line)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from modelmux.config.problems import ConfigError, Problem, ValueOrigin


def test_each_problem_is_its_own_log_record(caplog: pytest.LogCaptureFixture) -> None:
    origin = ValueOrigin("file", Path("/etc/m.toml"), line=3)
    error = ConfigError.from_problems([
        Problem("unknown field `prot`", ("server", "prot"), origin),
        Problem("expected a port", ("server", "port")),
        Problem("deprecated", ("x",), warning=True),
    ])
    logger = logging.getLogger("tests.problem_log")
    with caplog.at_level(logging.ERROR, logger.name):
        error.log(logger, "invalid configuration")
    assert [r.getMessage() for r in caplog.records] == [
        "invalid configuration: 2 problems",
        "  /etc/m.toml:3: server.prot: unknown field `prot`",
        "  server.port: expected a port",
    ]
    assert all("\n" not in r.getMessage() for r in caplog.records)


def test_one_problem_and_a_bare_message(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.problem_log")
    with caplog.at_level(logging.ERROR, logger.name):
        ConfigError.from_problems([Problem("bad", ("a",))]).log(logger, "reload rejected")
        ConfigError("provider 'p': no such plugin").log(logger, "reload rejected")
    assert [r.getMessage() for r in caplog.records] == [
        "reload rejected: 1 problem", "  a: bad", "reload rejected: provider 'p': no such plugin"]
