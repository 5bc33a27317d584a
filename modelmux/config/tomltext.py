"""TOML as text: the line of each key path (tomllib gives no positions), and a small writer.

``key_lines`` scans table headers (counting each ``[[array]]``) and ``key =`` lines; it does
not parse values, so it only needs to be right about where things start. ``dumps`` writes the
plain data ModelMux produces (tables, arrays of tables, scalars, arrays of scalars).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from modelmux.config.problems import KeyPath

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _split_key(text: str) -> list[str] | None:
    """``a."b.c".d`` → ``["a", "b.c", "d"]``; None when it is not a key."""
    parts: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] in "\"'":
            quote = text[i]
            end = text.find(quote, i + 1)
            while quote == '"' and end > 0 and text[end - 1] == "\\":
                end = text.find(quote, end + 1)
            if end < 0:
                return None
            parts.append(text[i + 1:end])
            i = end + 1
        else:
            match = _BARE.match(text, i)
            if match is None:
                return None
            parts.append(match.group())
            i = match.end()
        while i < n and text[i] in " \t":
            i += 1
        if i < n:
            if text[i] != ".":
                return None
            i += 1
    return parts or None


def _key_end(line: str) -> int:
    """Index of the ``=`` that ends the key on ``line``, or -1."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "=":
            return i
        elif char == "#":
            return -1
    return -1


def key_lines(text: str) -> dict[KeyPath, int]:
    """Every table header and key in ``text`` → its 1-based line (first occurrence wins)."""
    lines: dict[KeyPath, int] = {}
    arrays: dict[tuple[str, ...], int] = {}
    table: KeyPath = ()
    in_string = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if in_string:
            if line.count(in_string) % 2 == 1:
                in_string = ""
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            is_array = line.startswith("[[")
            inner = line[2:line.find("]]")] if is_array else line[1:line.find("]")]
            parts = _split_key(inner)
            if parts is None:
                continue
            if is_array:
                arrays[tuple(parts)] = arrays.get(tuple(parts), -1) + 1
            concrete: list[str | int] = []
            for i in range(len(parts)):
                concrete.append(parts[i])
                index = arrays.get(tuple(parts[:i + 1]))
                if index is not None and (i < len(parts) - 1 or is_array):
                    concrete.append(index)
            table = tuple(concrete)
            for end in range(1, len(table) + 1):
                lines.setdefault(table[:end], number)
            continue
        end = _key_end(line)
        if end <= 0:
            continue
        parts = _split_key(line[:end])
        if parts is None:
            continue
        for stop in range(1, len(parts) + 1):
            lines.setdefault((*table, *parts[:stop]), number)
        value = line[end + 1:].strip()
        for quote in ('"""', "'''"):
            if value.startswith(quote) and value.count(quote) == 1:
                in_string = quote
    return lines


def line_of(lines: Mapping[KeyPath, int], path: KeyPath) -> int | None:
    """The line of ``path``, else of its nearest enclosing table or key."""
    for end in range(len(path), 0, -1):
        found = lines.get(path[:end])
        if found is not None:
            return found
    return None


def _key(name: str) -> str:
    return name if _BARE.fullmatch(name) else json.dumps(name, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def dumps(data: Mapping[str, Any], notes: Mapping[KeyPath, str] | None = None,
          inline: tuple[str, ...] = ("models",)) -> str:
    """``data`` as TOML; ``notes`` adds ``# comment`` after the line of that key path.

    Tables named in ``inline`` write their sub-tables as inline tables (``a = { ... }``).
    None values are left out (TOML has no null).

    Raises:
        TypeError: a value TOML cannot hold.
    """
    notes = notes or {}
    out: list[str] = []

    def emit_table(table: Mapping[str, Any], path: KeyPath, header: str | None) -> None:
        inlined = bool(path) and path[0] in inline
        simple = [(k, v) for k, v in table.items() if v is not None and not _is_table_array(v)
                  and not (isinstance(v, dict) and v and not inlined)]
        if header is not None:
            if out:
                out.append("")
            out.append(header)
        for name, value in simple:
            line = f"{_key(name)} = {_value(value)}"
            note = notes.get((*path, name))
            out.append(f"{line}  # {note}" if note else line)
        for name, value in table.items():
            if value is None or any(name == k for k, _ in simple):
                continue
            dotted = ".".join(_key(str(p)) for p in (*path, name) if not isinstance(p, int))
            if _is_table_array(value):
                for index, item in enumerate(value):
                    emit_table(item, (*path, name, index), f"[[{dotted}]]")
            else:
                emit_table(value, (*path, name), f"[{dotted}]")

    emit_table(data, (), None)
    return "\n".join(out) + "\n"
