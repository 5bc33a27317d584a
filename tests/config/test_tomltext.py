"""Finding key lines in TOML text, and writing TOML that reads back the same."""

from __future__ import annotations

import tomllib

from modelmux.config.tomltext import dumps, key_lines, line_of

TEXT = '''\
title = "x"
[server]
port = 1 # comment with = sign
"quoted key" = "a = b"
[server.cors]
allow_origins = [
  "https://a",
]
[[provider]]
name = "a"
text = """
[not.a.header]
"""
[[provider]]
name = "b"
[provider.headers]
x-key = "v"
dotted.inner = 3
[[vertex.models]]
name = "s"
[[vertex.models]]
name = "t"
'''


def test_key_lines() -> None:
    lines = key_lines(TEXT)
    assert lines[("title",)] == 1
    assert lines[("server", "port")] == 3
    assert lines[("server", "quoted key")] == 4
    assert lines[("server", "cors", "allow_origins")] == 6
    assert lines[("provider", 0)] == 9 and lines[("provider", 0, "text")] == 11
    assert ("not", "a", "header") not in lines
    assert lines[("provider", 1, "name")] == 15
    assert lines[("provider", 1, "headers", "x-key")] == 17
    assert lines[("provider", 1, "headers", "dotted", "inner")] == 18
    assert lines[("vertex", "models", 1, "name")] == 22


def test_line_of_falls_back_to_the_enclosing_table() -> None:
    lines = key_lines(TEXT)
    assert line_of(lines, ("provider", 1, "models")) == 14
    assert line_of(lines, ("server", "cors", "allow_origins", 0)) == 6
    assert line_of(lines, ("nowhere",)) is None


def test_dumps_round_trips() -> None:
    data = tomllib.loads(TEXT)
    assert tomllib.loads(dumps(data)) == data


def test_dumps_notes_and_inline_aliases() -> None:
    data = {"server": {"port": 1}, "models": {"a": "p/m", "b": {"target": "p/n", "ignore_case": True}},
            "provider": [{"name": "x", "headers": {}, "base_url": None}]}
    text = dumps(data, {("server", "port"): "from here"})
    assert 'port = 1  # from here' in text
    assert 'b = { target = "p/n", ignore_case = true }' in text
    assert "base_url" not in text
    assert tomllib.loads(text) == {"server": {"port": 1}, "models": data["models"],
                                   "provider": [{"name": "x", "headers": {}}]}
