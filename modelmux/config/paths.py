"""Where ModelMux keeps its files: user and system config, the log/state folder, 1.x folders.

Each function takes the environment explicitly (default ``os.environ``) so tests can point
``HOME`` and ``XDG_*`` at a temporary folder. Nothing here creates or reads files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SYSTEM_CONFIG_FILE = Path("/etc/modelmux/config.toml")
CONFIG_NAME = "config.toml"
LOG_NAME = "modelmux.log"
LEGACY_MACOS_NAMES = ("com.SkyCorp.modelmux", "modelmux")
"""1.x's macOS folders under ``~/Library/Application Support``, in the order 1.x preferred."""


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def home_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$HOME``, else the password database's idea of it."""
    home = _env(environ).get("HOME")
    return Path(home) if home else Path.home()


def _xdg(environ: Mapping[str, str] | None, name: str, fallback: str) -> Path:
    """An XDG base directory; relative values are ignored, as the XDG spec says."""
    value = _env(environ).get(name, "")
    if value and os.path.isabs(value):
        return Path(value)
    return home_dir(environ) / fallback


def user_config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME/modelmux`` (default ``~/.config/modelmux``), on Linux and macOS alike."""
    return _xdg(environ, "XDG_CONFIG_HOME", ".config") / "modelmux"


def user_config_file(environ: Mapping[str, str] | None = None) -> Path:
    return user_config_dir(environ) / CONFIG_NAME


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/modelmux`` (default ``~/.local/state/modelmux``): where logs may go."""
    return _xdg(environ, "XDG_STATE_HOME", ".local/state") / "modelmux"


def default_log_file(environ: Mapping[str, str] | None = None) -> Path:
    return state_dir(environ) / LOG_NAME


def legacy_macos_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """1.x's macOS config folders, in the order 1.x looked at them."""
    support = home_dir(environ) / "Library" / "Application Support"
    return [support / name for name in LEGACY_MACOS_NAMES]


def legacy_log_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where 1.x wrote its dated log files (``modelmux.log.YYYY-MM-DD``)."""
    return [state_dir(environ), home_dir(environ) / "Library" / "Logs" / "modelmux"]


def expand_user(value: str, environ: Mapping[str, str] | None = None) -> str:
    """``~`` or a leading ``~/`` replaced by the home folder; anything else unchanged."""
    if value == "~":
        return str(home_dir(environ))
    if value.startswith("~/"):
        return str(home_dir(environ) / value[2:])
    return value
