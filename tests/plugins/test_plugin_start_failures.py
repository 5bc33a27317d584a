"""A plugin that is installed but broken stops ``modelmux serve`` (a real process) with exit
status 2 and a message naming it: its module fails to import, its constructor or factory
raises, or its factory returns something that is not a ``Stage``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from modelmux.config import plugins
from tests.e2e.proc import LOOPBACK_SERVER, modelmux_command
from tests.plugins.helpers import fake_dist

MODULES = {
    "broken_import": "raise ImportError('needs a library that is missing')\n",
    "broken_parts": (
        "from modelmux.plugins import PluginProviderConfig, Provider\n"
        "class NotAStage:\n    def __init__(self, options):\n        pass\n"
        "def not_a_stage(options):\n    return 42\n"
        "class Refuses:\n    def __init__(self, options):\n        raise ValueError('bad options')\n"
        "class Grumpy(Provider):\n    Config = PluginProviderConfig\n"
        "    def __init__(self, config, pool):\n        raise RuntimeError('no upstream key')\n"
        "    async def complete(self, call):\n        return b''\n"
        "    def stream(self, call):\n        raise NotImplementedError\n"),
}
POINTS = {
    plugins.MIDDLEWARE_GROUP: {"gone": "broken_import:X", "plain": "broken_parts:NotAStage",
                               "number": "broken_parts:not_a_stage",
                               "refuses": "broken_parts:Refuses"},
    plugins.PROVIDER_GROUP: {"gone": "broken_import:Y", "grumpy": "broken_parts:Grumpy"},
}
MOCK = '[[provider]]\nname = "m"\ntype = "mock"\nmodels = ["x"]\n'


@pytest.mark.parametrize(("table", "needle"), [
    (MOCK + '[[middleware]]\nname = "gone"\n',
     "middleware[0].name: the 'gone' plugin (modelmux.middleware: broken_import:X) failed to "
     "load: ImportError: needs a library that is missing"),
    ('[[provider]]\nname = "p"\ntype = "gone"\nmodels = ["m"]\n',
     "the 'gone' plugin (modelmux.providers: broken_import:Y) failed to load: "
     "ImportError: needs a library that is missing"),
    (MOCK + '[[middleware]]\nname = "refuses"\n',
     "middleware[0]: the 'refuses' middleware plugin failed to start: ValueError: bad options"),
    ('[[provider]]\nname = "p"\ntype = "grumpy"\nmodels = ["m"]\n',
     "provider[0]: the 'grumpy' plugin failed to start: RuntimeError: no upstream key"),
    (MOCK + '[[middleware]]\nname = "plain"\n',
     "middleware[0]: the 'plain' middleware plugin returned <broken_parts.NotAStage"),
    (MOCK + '[[middleware]]\nname = "number"\n',
     "middleware[0]: the 'number' middleware plugin returned 42"),
], ids=["middleware-import", "provider-import", "middleware-factory-raises",
        "provider-constructor-raises", "middleware-not-a-stage", "factory-returns-int"])
def test_a_broken_plugin_stops_serve_with_exit_2_naming_it(tmp_path: Path, table: str,
                                                          needle: str) -> None:
    site = fake_dist(tmp_path / "site", "broken", POINTS, MODULES)
    path = tmp_path / "config.toml"
    path.write_text(LOOPBACK_SERVER + table)
    done = subprocess.run([*modelmux_command(), "serve", "--config", str(path)],
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                               "PYTHONPATH": str(site)},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "invalid configuration" in done.stderr and needle in done.stderr, done.stderr
    assert "listening on" not in done.stderr
