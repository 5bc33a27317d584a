"""What went wrong in a configuration, and where: problems, their origins, ``ConfigError``.

An ``ValueOrigin`` says which layer gave a value (a file and its key path, an environment variable,
a command-line flag, or the default); a ``Problem`` pairs a message with the key path and the
origin, and renders as ``file:line: provider[1].base_url: expected ...``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

KeyPath = tuple[str | int, ...]


def format_path(path: KeyPath) -> str:
    """``("provider", 1, "base_url")`` → ``provider[1].base_url``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True)
class ValueOrigin:
    """Where one value came from.

    ``layer`` is ``file``, ``environment``, ``command line`` or ``default``; ``file`` and ``key``
    (the key path as written in that file, used to find its line) are set for files; ``name``
    is the environment variable or flag.
    """

    layer: str
    file: Path | None = None
    key: KeyPath | None = None
    name: str | None = None
    line: int | None = None

    def describe(self) -> str:
        if self.file is not None:
            return f"{self.file}:{self.line}" if self.line else str(self.file)
        if self.name is not None:
            return f"{self.layer} {self.name}"
        return self.layer


@dataclass(frozen=True)
class Problem:
    """One configuration error (or, with ``warning``, something worth saying)."""

    message: str
    path: KeyPath = ()
    origin: ValueOrigin | None = None
    warning: bool = False

    def render(self) -> str:
        parts = []
        if self.origin is not None and self.origin.layer != "default":
            parts.append(self.origin.describe())
        if self.path:
            parts.append(format_path(self.path))
        parts.append(self.message)
        return ": ".join(parts)


def _order(problem: Problem) -> tuple[int, str, int]:
    """Files first (by name and line), then the environment, then the command line."""
    origin = problem.origin
    if origin is None or origin.layer == "default":
        return (3, "", 0)
    if origin.file is not None:
        return (0, str(origin.file), origin.line or 0)
    return (1 if origin.layer == "environment" else 2, origin.name or "", 0)


class ConfigError(Exception):
    """The configuration cannot be used; the message lists every problem with where and why."""

    def __init__(self, message: str, problems: Sequence[Problem] = (),
                 warnings: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)
        self.warnings = list(warnings)

    @classmethod
    def from_problems(cls, problems: Sequence[Problem]) -> ConfigError:
        """One error listing every non-warning problem; warnings are kept on ``.warnings``."""
        errors = sorted((p for p in problems if not p.warning), key=_order)
        count = f"{len(errors)} problem" + ("" if len(errors) == 1 else "s")
        lines = [f"{count}:"] + [f"  {p.render()}" for p in errors]
        return cls("\n".join(lines), errors, [p for p in problems if p.warning])

    def log(self, logger: logging.Logger, headline: str) -> None:
        """Log ``headline: N problems`` then one line per problem (a log line holds no
        newline: the log would escape the list into one long line)."""
        if not self.problems:
            logger.error("%s: %s", headline, self)
            return
        count = len(self.problems)
        logger.error("%s: %d problem%s", headline, count, "" if count == 1 else "s")
        for problem in self.problems:
            logger.error("  %s", problem.render())
