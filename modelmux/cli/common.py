"""What every ``modelmux`` command shares: help layout, exit codes, loading and reporting config.

Help uses 1.x's headings (USAGE, OPTIONS, ...). Exit codes: 0 success, 1 a failure (a doctor
check, a refused overwrite, an editor that cannot start), 2 an invalid configuration or usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from modelmux.config.load import LoadedConfig, Override, load_config
from modelmux.config.problems import ConfigError, KeyPath, Problem

OK, FAILED, INVALID = 0, 1, 2


class Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's layout with 1.x's ``USAGE:`` heading; descriptions and epilogs kept as written."""

    def add_usage(self, usage: str | None, actions: Any, groups: Any, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, "USAGE: " if prefix is None else prefix)

    def _format_action(self, action: argparse.Action) -> str:
        """List subcommands directly under their heading (no ``COMMAND`` line above them)."""
        if isinstance(action, argparse._SubParsersAction):
            return "".join(self._format_action(sub) for sub in action._get_subactions())
        return super()._format_action(action)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser with upper-case section headings (OPTIONS, ARGUMENTS)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["formatter_class"] = Formatter
        super().__init__(*args, **kwargs)
        self._optionals.title = "OPTIONS"
        self._positionals.title = "ARGUMENTS"


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", metavar="FILE", type=Path,
                        help="use FILE instead of the user and system config files")


def print_problems(problems: Sequence[Problem], stream: TextIO | None = None,
                   prefix: str = "warning: ") -> None:
    out = sys.stderr if stream is None else stream
    for problem in problems:
        print(f"{prefix}{problem.render()}", file=out)


def report_invalid(error: ConfigError, stream: TextIO | None = None) -> None:
    """Print an invalid configuration's problems (and its warnings) to stderr."""
    out = sys.stderr if stream is None else stream
    print(f"modelmux: invalid configuration: {error}", file=out)
    print_problems(error.warnings, out)


def load_or_report(config: Path | None, overrides: Sequence[Override] = (), *,
                   quiet: bool = False, unused: Sequence[KeyPath] = ()) -> LoadedConfig | None:
    """Load the effective config (without the ``unused`` settings); on error print every
    problem and return None."""
    try:
        loaded = load_config(config, overrides=overrides, unused=unused)
    except ConfigError as exc:
        report_invalid(exc)
        return None
    for note in loaded.notes:
        print(f"modelmux: {note}", file=sys.stderr)
    if not quiet:
        print_problems(loaded.warnings)
    return loaded


def read_answer(prompt: str) -> str | None:
    """One stripped line from stdin after ``prompt``; None at end of input."""
    print(prompt, end="", flush=True)
    line = sys.stdin.readline()
    if not line:
        print()
        return None
    return line.strip()


def ask(prompt: str, default: str = "") -> str:
    """An answer, or ``default`` for an empty line or end of input."""
    return read_answer(prompt) or default


def confirm(prompt: str, default: bool, on_eof: bool | None = None) -> bool:
    """A yes/no question, re-asked a few times until answered.

    An empty line gives ``default``; end of input gives ``on_eof`` (default: ``default``).
    """
    hint = "Y/n" if default else "y/N"
    for _ in range(5):
        answer = read_answer(f"{prompt} ({hint}): ")
        if answer is None:
            return default if on_eof is None else on_eof
        if not answer:
            return default
        if answer.lower() in ("y", "yes", "true", "1"):
            return True
        if answer.lower() in ("n", "no", "false", "0"):
            return False
        print("Please enter y/yes or n/no.")
    return default
