"""Loading a config in-process with a private HOME and no system file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelmux.config.load import LoadedConfig, load_config


def environ_for(home: Path, **extra: str) -> dict[str, str]:
    """An environment with only HOME/XDG pointing into ``home`` plus ``extra``."""
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_STATE_HOME": str(home / ".local/state"), **extra}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(home: Path, config: Path | None = None, **kwargs: Any) -> LoadedConfig:
    """``load_config`` isolated in ``home``; ``environ`` may add variables."""
    environ = environ_for(home, **kwargs.pop("environ", {}))
    kwargs.setdefault("system_file", home / "etc" / "config.toml")
    return load_config(config, environ=environ, **kwargs)
