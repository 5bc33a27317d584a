"""Finding and reading the config file.

Search order when no ``--config`` is given: ``$XDG_CONFIG_HOME/modelmux/config.toml`` (default
``~/.config/modelmux/config.toml``), then ``/etc/modelmux/config.toml``. No file anywhere means the
zero-config default: one mock model.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from modelmux.config.schema import Config, decode, default_config


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and why."""


def candidate_paths() -> list[Path]:
    """Config files in the order they are looked for."""
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [Path(xdg) / "modelmux" / "config.toml", Path("/etc/modelmux/config.toml")]


def find_config() -> Path | None:
    for path in candidate_paths():
        if path.is_file():
            return path
    return None


def load_file(path: Path) -> Config:
    """Read and validate one config file.

    Raises:
        ConfigError: unreadable, not TOML, or not valid against the schema.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load(path: Path | None) -> tuple[Config, Path | None]:
    """The config from ``path``, else from the first existing candidate, else the default."""
    if path is not None:
        return load_file(path), path
    found = find_config()
    if found is None:
        return default_config(), None
    return load_file(found), found
