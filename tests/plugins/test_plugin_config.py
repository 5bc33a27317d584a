"""Plugins in-process: discovery by entry point, their config checked like the built-ins'
(with file and line), load failures as config problems naming the plugin, and the guard that
turns a provider plugin's fault into a 500 naming it."""

from __future__ import annotations

import asyncio
import typing
from pathlib import Path

import pytest

from modelmux.cli.preflight import build_problems
from modelmux.config import plugins
from modelmux.config.problems import ConfigError
from modelmux.config.providers import ProviderConfig
from modelmux.errors import PluginFailed
from modelmux.pipeline.plugins import build_middlewares
from modelmux.providers.base import ChatCall
from modelmux.providers.registry import build_provider
from modelmux.schemas.openai_chat import request_decoder
from tests.config.helpers import load, write
from tests.plugins.helpers import fake_dist

GOOD = """\
[[provider]]
name = "e"
type = "echo"
models = ["echo"]
prefix = "> "

[[middleware]]
name = "redact"
options = { replacement = "#" }
"""

BUILT_IN = ", ".join(m.__struct_config__.tag for m in typing.get_args(ProviderConfig))
"""The built-in provider types, in the order the schema declares them."""


def test_entry_points_are_found_and_plugin_tables_decode_with_the_plugins_config(
        tmp_path: Path, with_example: Path) -> None:
    assert "echo" in plugins.installed(plugins.PROVIDER_GROUP)
    assert "redact" in plugins.installed(plugins.MIDDLEWARE_GROUP)
    loaded = load(tmp_path, write(tmp_path / "c.toml", GOOD))
    (table,) = loaded.config.provider
    assert type(table).__name__ == "EchoConfig" and isinstance(table, plugins.PluginProviderConfig)
    assert (table.type, table.name, table.models) == ("echo", "e", ["echo"])
    assert table.prefix == "> "  # type: ignore[attr-defined]
    assert loaded.config.middleware[0].options == {"replacement": "#"}
    assert build_problems(loaded.config, loaded.origins) == []
    provider = build_provider(table)
    assert (provider.type, provider.name, provider.models) == ("echo", "e", ["echo"])
    (stage,) = build_middlewares(loaded.config.middleware)
    assert (stage.name, stage.kind, stage.plugin) == ("redact", "middleware", True)


def test_a_plugin_table_is_checked_against_its_config_with_file_and_line(
        tmp_path: Path, with_example: Path) -> None:
    config = write(tmp_path / "c.toml", GOOD.replace('prefix = "> "', 'colour = "red"\nchunks = "x"'))
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, config)
    text = str(caught.value)
    assert f"{config}:5: provider[0].colour: unknown field `colour`" in text
    assert f"{config}:6: provider[0].chunks: expected `int`, got `str`" in text


def test_an_unknown_type_lists_the_built_in_and_installed_types(tmp_path: Path,
                                                                with_example: Path) -> None:
    config = write(tmp_path / "c.toml", GOOD.replace('type = "echo"', 'type = "ecko"'))
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, config)
    assert (f"{config}:3: provider[0].type: `type` must be one of {BUILT_IN}, "
            "or the name of an installed provider plugin "
            "(modelmux.providers entry points: echo") in str(caught.value)


def test_an_uninstalled_middleware_is_a_problem_naming_what_is_installed(
        tmp_path: Path, with_example: Path) -> None:
    config = write(tmp_path / "c.toml", GOOD.replace('name = "redact"', 'name = "scrub"'))
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, config)
    assert (f"{config}:8: middleware[0].name: no middleware plugin named 'scrub' is installed "
            "(installed modelmux.middleware entry points: redact") in str(caught.value)
    disabled = GOOD.replace('name = "redact"', 'name = "scrub"\nenabled = false')
    assert load(tmp_path, write(tmp_path / "d.toml", disabled)).config.middleware[0].enabled is False


BROKEN = {
    "broken_import": "raise ImportError('needs a library that is missing')\n",
    "broken_parts": (
        "class NotAStage:\n    def __init__(self, options):\n        pass\n"
        "class Refuses:\n    def __init__(self, options):\n        raise ValueError('bad options')\n"
        "class NoConfig:\n    pass\n"),
}


@pytest.mark.parametrize(("table", "message"), [
    ('[[middleware]]\nname = "gone"\n',
     "middleware[0].name: the 'gone' plugin (modelmux.middleware: broken_import:X) failed to "
     "load: ImportError: needs a library that is missing"),
    ('[[middleware]]\nname = "plain"\n',
     "middleware[0]: the 'plain' middleware plugin returned <broken_parts.NotAStage"),
    ('[[middleware]]\nname = "refuses"\n',
     "middleware[0]: the 'refuses' middleware plugin failed to start: ValueError: bad options"),
    ('[[provider]]\nname = "p"\ntype = "noconfig"\nmodels = ["m"]\n',
     "provider[0].type: the 'noconfig' plugin (modelmux.providers) has no `Config` class"),
])
def test_a_plugin_that_cannot_load_or_build_is_a_config_problem_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str, message: str) -> None:
    site = fake_dist(tmp_path / "site", "broken", {
        plugins.MIDDLEWARE_GROUP: {"gone": "broken_import:X", "plain": "broken_parts:NotAStage",
                                   "refuses": "broken_parts:Refuses"},
        plugins.PROVIDER_GROUP: {"noconfig": "broken_parts:NoConfig"}}, BROKEN)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(__import__("sys").modules, "broken_parts", raising=False)
    config = write(tmp_path / "c.toml", '[[provider]]\nname = "m"\ntype = "mock"\n'
                   'models = ["x"]\n' * ("provider" not in table) + table)
    try:
        loaded = load(tmp_path, config)
    except ConfigError as exc:
        problems = exc.problems
    else:
        problems = build_problems(loaded.config, loaded.origins)
    assert any(message in p.render() for p in problems), [p.render() for p in problems]


BODY = b'{"model": "echo", "messages": [{"role": "user", "content": "please explode"}]}'


def call() -> ChatCall:
    return ChatCall(request_decoder.decode(BODY), BODY, model="echo", public_model="echo",
                    completion_id="c1", created=1, request_id="r1")


def test_a_provider_plugins_fault_becomes_a_500_naming_it(tmp_path: Path,
                                                          with_example: Path) -> None:
    config = write(tmp_path / "c.toml", GOOD.replace('prefix = "> "', 'fail_on = "explode"'))
    provider = build_provider(load(tmp_path, config).config.provider[0])

    async def stream() -> list[bytes]:
        return [chunk async for chunk in provider.stream(call())]

    for attempt in (provider.complete(call()), stream()):
        with pytest.raises(PluginFailed) as caught:
            asyncio.run(attempt)
        assert caught.value.status == 500 and caught.value.code == "plugin_error"
        assert caught.value.message == "The 'echo' plugin failed: RuntimeError."
