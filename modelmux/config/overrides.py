"""Runtime overrides an operator set from the admin API, kept in a small JSON file.

Per deployment id (``provider/model``): ``rpm`` and ``tpm`` replacing the configured limits,
and ``breaker = "open"`` for a circuit held open. The file lives in the state folder
(``overrides.json``) so the overrides outlive reloads and restarts; the config files are never
rewritten. Reads tolerate a missing file; a damaged one reads as empty and says why in
``problem``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from modelmux.config.paths import state_dir

FILE_NAME = "overrides.json"
LIMIT_FIELDS = ("rpm", "tpm")

Deployments = dict[str, dict[str, Any]]


class Overrides:
    """The overrides file of one state folder (or none kept anywhere, with ``path`` None)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.problem: str | None = None
        self.deployments: Deployments = {}
        self.read()

    @classmethod
    def of_state_dir(cls) -> Overrides:
        """The overrides file of this user's state folder (``overrides.json``)."""
        return cls(state_dir() / FILE_NAME)

    def read(self) -> Deployments:
        """Load the file again (another worker may have written it); returns the overrides."""
        self.problem = None
        if self.path is None or not self.path.exists():
            self.deployments = {}
            return self.deployments
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            found = data["deployments"]
            if not isinstance(found, dict) or not all(isinstance(v, dict) for v in found.values()):
                raise ValueError("deployments must map ids to tables")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.problem = f"{self.path}: ignored, cannot be read ({exc})"
            found = {}
        self.deployments = {str(k): dict(v) for k, v in found.items()}
        return self.deployments

    def limits(self) -> dict[str, dict[str, int | None]]:
        """Per deployment, the ``rpm``/``tpm`` that replace the configured ones."""
        return {ident: {k: v for k, v in fields.items() if k in LIMIT_FIELDS}
                for ident, fields in self.deployments.items()
                if any(k in LIMIT_FIELDS for k in fields)}

    def pinned_open(self) -> list[str]:
        """The deployments whose circuit an operator holds open."""
        return [ident for ident, fields in self.deployments.items()
                if fields.get("breaker") == "open"]

    def update(self, ident: str, **fields: Any) -> None:
        """Set (a value) or drop (None) fields of ``ident`` and write the file atomically,
        over what the file holds now (another worker may have written it).

        Raises:
            OSError: the state folder cannot be written.
        """
        self.read()
        current = dict(self.deployments.get(ident, {}))
        for key, value in fields.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        deployments = dict(self.deployments)
        if current:
            deployments[ident] = current
        else:
            deployments.pop(ident, None)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            temporary.write_text(json.dumps({"deployments": deployments}, indent=2, sort_keys=True)
                                 + "\n", encoding="utf-8")
            os.replace(temporary, self.path)
        self.deployments = deployments
