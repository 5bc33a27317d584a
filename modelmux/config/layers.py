"""Config layers as plain data, and merging them with the origin of every value kept.

A ``Layer`` is the raw TOML-shaped dict one source gives (a file, the environment, the command
line) plus a ``ValueOrigin`` for each key path in it. ``merge`` deep-merges tables key by key;
arrays of tables and the paths named ``atomic`` are replaced whole by a higher layer.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelmux.config.problems import ConfigError, KeyPath, Problem, ValueOrigin
from modelmux.config.tomltext import key_lines, line_of

ValueOrigins = dict[KeyPath, ValueOrigin]
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)$|\s*\(at end of document\)$")


@dataclass
class Layer:
    """One source of settings; ``data`` is mutable until the layers are merged."""

    label: str
    data: dict[str, Any]
    origins: ValueOrigins = field(default_factory=dict)
    path: Path | None = None


def walk(value: Any, path: KeyPath = ()) -> Iterable[KeyPath]:
    """Every key path inside ``value`` (tables, array items, leaves), parents first."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from walk(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                yield (*path, index)
                yield from walk(item, (*path, index))


def read_file(path: Path, label: str = "file") -> Layer:
    """Parse one TOML file into a layer whose origins carry file and line.

    Raises:
        ConfigError: unreadable, not UTF-8, or not TOML (with the line TOML names).
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError.from_problems(
            [Problem(f"cannot read: {exc.strerror or exc}",
                     origin=ValueOrigin("file", path))]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError.from_problems(
            [Problem(f"not UTF-8 text: {exc.reason}", origin=ValueOrigin("file", path))]) from None
    return parse_text(text, path, label)


def parse_text(text: str, path: Path, label: str = "file") -> Layer:
    """Like ``read_file`` for text already read.

    Raises:
        ConfigError: not TOML.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        line = None
        if match:
            line = int(match.group(1)) if match.group(1) else text.count("\n") + 1
            message = message[:match.start()]
        problem = Problem(f"not valid TOML: {message}", origin=ValueOrigin("file", path, line=line))
        raise ConfigError.from_problems([problem]) from None
    lines = key_lines(text)
    origins = {key: ValueOrigin("file", path, key, line=line_of(lines, key)) for key in walk(data)}
    return Layer(label, data, origins, path)


def set_value(layer: Layer, path: KeyPath, value: Any, origin: ValueOrigin) -> None:
    """Set ``path`` (string keys only) in ``layer.data``, creating tables on the way."""
    table = layer.data
    for index, key in enumerate(path[:-1]):
        assert isinstance(key, str)
        table = table.setdefault(key, {})
        layer.origins.setdefault(path[:index + 1], origin)
    last = path[-1]
    assert isinstance(last, str)
    table[last] = value
    layer.origins[path] = origin
    for sub in walk(value, path):
        layer.origins[sub] = origin


def pop_value(layer: Layer, path: KeyPath) -> tuple[Any, ValueOrigins] | None:
    """Remove ``path`` from the layer; returns its value and the origins under it."""
    table: Any = layer.data
    for key in path[:-1]:
        if not isinstance(table, dict) or key not in table:
            return None
        table = table[key]
    if not isinstance(table, dict) or path[-1] not in table:
        return None
    value = table.pop(path[-1])
    moved = {k: v for k, v in layer.origins.items() if k[:len(path)] == path}
    for gone in moved:
        del layer.origins[gone]
    return value, moved


def move_value(layer: Layer, source: KeyPath, target: KeyPath) -> bool:
    """Move a value to another key path, keeping each origin (and so its file line)."""
    popped = pop_value(layer, source)
    if popped is None:
        return False
    value, moved = popped
    set_value(layer, target, value, moved[source])
    for key, origin in moved.items():
        layer.origins[(*target, *key[len(source):])] = origin
    return True


def merge(layers: Sequence[Layer], atomic: Iterable[KeyPath] = ()
          ) -> tuple[dict[str, Any], ValueOrigins]:
    """Deep-merge ``layers`` (lowest first) into one dict and its origins."""
    atomic = set(atomic)
    merged: dict[str, Any] = {}
    origins: ValueOrigins = {}

    def into(base: dict[str, Any], top: dict[str, Any], path: KeyPath, layer: Layer) -> None:
        for key, value in top.items():
            here = (*path, key)
            current = base.get(key)
            if isinstance(value, dict) and isinstance(current, dict) and here not in atomic:
                origins.setdefault(here, layer.origins.get(here, ValueOrigin(layer.label)))
                into(current, value, here, layer)
                continue
            for old in [k for k in origins if k[:len(here)] == here]:
                del origins[old]
            base[key] = _copy(value)
            origins[here] = layer.origins.get(here, ValueOrigin(layer.label))
            for sub in walk(value, here):
                origins[sub] = layer.origins.get(sub, origins[here])

    for layer in layers:
        into(merged, layer.data, (), layer)
    return merged, origins


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def origin_of(origins: ValueOrigins, path: KeyPath) -> ValueOrigin | None:
    """The origin of ``path``, else of its nearest recorded parent."""
    for end in range(len(path), 0, -1):
        found = origins.get(path[:end])
        if found is not None:
            return found
    return None
