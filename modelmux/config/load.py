"""Loading the effective configuration from its layers, highest first.

Command-line flags > ``MODELMUX_*`` environment > user file (``$XDG_CONFIG_HOME/modelmux/
config.toml``) > system file (``/etc/modelmux/config.toml``) > 1.x plain variables (``PORT``...)
> defaults; ``--config FILE`` replaces the two files. No file and no provider anywhere means the
zero-config default: one mock model. Each file's other spellings of today's keys
(``shorthand``) are rewritten before the layers merge. Every problem is collected before
``ConfigError`` is raised.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from modelmux.config import macos
from modelmux.config.env import (
    PLAIN_ENV_PATHS,
    environment_layer,
    expand_strings,
    plain_environment_layer,
    references,
)
from modelmux.config.layers import Layer, ValueOrigins, merge, read_file, set_value
from modelmux.config.migrate import split_legacy, synthesize
from modelmux.config.paths import SYSTEM_CONFIG_FILE, user_config_file
from modelmux.config.problems import ConfigError, KeyPath, Problem, ValueOrigin
from modelmux.config.schema import Config, default_config
from modelmux.config.shorthand import expand_shorthands
from modelmux.config.validate import check_config, check_schema, to_config

__all__ = ["ConfigError", "LoadedConfig", "candidate_paths", "load", "load_config", "load_file"]

Override = tuple[KeyPath, Any, str]
"""A command-line setting: (key path, value, flag as typed)."""
ATOMIC: tuple[KeyPath, ...] = (("_legacy", "vertex"),)


@dataclass
class LoadedConfig:
    """The effective config and how it came to be."""

    config: Config
    data: dict[str, Any]
    origins: ValueOrigins
    files: list[Path] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    defaulted: bool = False

    @property
    def path(self) -> Path | None:
        """The highest-priority file read, if any."""
        return self.files[-1] if self.files else None


def candidate_paths(environ: Mapping[str, str] | None = None,
                    system_file: Path = SYSTEM_CONFIG_FILE) -> list[Path]:
    """Config files in the order they are looked for (the user file first)."""
    return [user_config_file(environ), system_file]


def _file_layers(config_file: Path | None, environ: Mapping[str, str], system_file: Path,
                 migrate_macos: bool, problems: list[Problem], notes: list[str]) -> list[Layer]:
    """The file layers, lowest first; read errors become problems."""
    if config_file is not None:
        return _read([(config_file, "file")], True, problems)
    legacy: Path | None = None
    if migrate_macos:
        try:
            moved = macos.migrate_legacy_dir(environ)
        except OSError as exc:
            legacy = macos.legacy_config(environ)
            problems.append(Problem(f"could not move the 1.x macOS config folder ({exc}); "
                                    f"reading {legacy} instead", warning=True))
        else:
            if moved is not None:
                notes.append(moved.report())
    user = user_config_file(environ)
    return _read([(system_file, "system file"), (user if user.is_file() else legacy, "user file")],
                 False, problems)


def _read(paths: list[tuple[Path | None, str]], required: bool,
          problems: list[Problem]) -> list[Layer]:
    """Parse each existing file (each given file when ``required``); errors become problems."""
    layers = []
    for path, label in paths:
        if path is None or (not required and not path.is_file()):
            continue
        try:
            layers.append(read_file(path, label))
        except ConfigError as exc:
            problems.extend(exc.problems)
    return layers


def _plain_env_warnings(layer: Layer, origins: ValueOrigins) -> list[Problem]:
    """Each 1.x plain variable in use: deprecated, or ignored because a file sets the key."""
    warnings = []
    for name, path in PLAIN_ENV_PATHS.items():
        mine = layer.origins.get(path)
        if mine is None or mine.name != name:
            continue
        winner = origins.get(path)
        if path[0] == "_legacy":
            message = "a ModelMux 1.x variable (deprecated): `modelmux config migrate` folds it in"
        elif winner == mine:
            new = "MODELMUX_" + "_".join(map(str, path)).upper()
            message = f"a ModelMux 1.x variable (deprecated): use {new}"
        else:
            where = winner.describe() if winner else "a higher layer"
            message = f"ignored: {where} sets it (files win over 1.x plain variables)"
        warnings.append(Problem(message, origin=mine, warning=True))
    return warnings


def gather(config_file: Path | None = None, *, overrides: Sequence[Override] = (),
           environ: Mapping[str, str] | None = None, system_file: Path = SYSTEM_CONFIG_FILE,
           migrate_macos: bool = True, read_files: bool = True
           ) -> tuple[dict[str, Any], ValueOrigins, list[Path], list[Problem], list[str]]:
    """Read and merge every layer, mapping 1.x settings; returns (data, origins, files,
    problems, notes) with nothing expanded or validated yet."""
    environ = os.environ if environ is None else environ
    problems: list[Problem] = []
    notes: list[str] = []
    files = _file_layers(config_file, environ, system_file, migrate_macos, problems, notes) \
        if read_files else []
    plain, plain_problems = plain_environment_layer(environ)
    env, env_problems = environment_layer(environ, references([layer.data for layer in files]))
    cli = Layer("command line", {})
    for path, value, flag in overrides:
        set_value(cli, path, value, ValueOrigin("command line", name=flag))
    for layer in files:
        problems += split_legacy(layer) + expand_shorthands(layer)
    data, origins = merge([plain, *files, env, cli], ATOMIC)
    problems += plain_problems + env_problems + _plain_env_warnings(plain, origins)
    problems += synthesize(data, origins, environ)
    return data, origins, [layer.path for layer in files if layer.path], problems, notes


def load_config(config_file: Path | None = None, *, overrides: Sequence[Override] = (),
                environ: Mapping[str, str] | None = None, system_file: Path = SYSTEM_CONFIG_FILE,
                migrate_macos: bool = True, expand: bool = True,
                unused: Sequence[KeyPath] = ()) -> LoadedConfig:
    """The effective configuration, validated. ``unused`` names settings the caller never
    reads; they are left out before ``${VAR}`` expansion, so a variable only they refer to
    need not be set (``modelmux db`` needs no ``[auth] master_key``).

    Raises:
        ConfigError: any error in any layer; the message lists them all, each with where.
    """
    environ = os.environ if environ is None else environ
    data, origins, files, problems, notes = gather(
        config_file, overrides=overrides, environ=environ, system_file=system_file,
        migrate_macos=migrate_macos)
    defaulted = not files and not data.get("provider")
    if defaulted:
        mock = msgspec.to_builtins(default_config().provider[0])
        data["provider"] = [mock]
        origins[("provider",)] = ValueOrigin("default")
    for path in unused:
        _drop(data, path)
    if expand:
        problems += expand_strings(data, origins, environ)
    problems += check_schema(data, origins) + check_config(data, origins)
    config = None
    if not any(not p.warning for p in problems):
        config = to_config(data)
    errors = [p for p in problems if not p.warning]
    if errors or config is None:
        raise ConfigError.from_problems(problems)
    return LoadedConfig(config, data, origins, files, [p for p in problems if p.warning], notes,
                        defaulted)


def _drop(data: dict[str, Any], path: KeyPath) -> None:
    table: Any = data
    for key in path[:-1]:
        table = table.get(key) if isinstance(table, dict) else None
    if isinstance(table, dict):
        table.pop(path[-1], None)


def load_file(path: Path) -> Config:
    """Read and validate one config file (with the environment layers, as ``--config`` does).

    Raises:
        ConfigError: unreadable, not TOML, or not valid.
    """
    return load_config(path, migrate_macos=False).config


def load(path: Path | None) -> tuple[Config, Path | None]:
    """The config from ``path``, else from the default locations; and the file it came from.

    Raises:
        ConfigError: the configuration is invalid.
    """
    loaded = load_config(path)
    return loaded.config, loaded.path
