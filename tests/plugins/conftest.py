"""The example plugin, installed once per session into a private directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugins.helpers import install_example


@pytest.fixture(scope="session")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the installed example plugin: put it on ``sys.path``/PYTHONPATH."""
    return install_example(tmp_path_factory.mktemp("plugin") / "site")


@pytest.fixture
def with_example(example_site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example plugin importable (and its entry points found) in this process."""
    monkeypatch.syspath_prepend(str(example_site))
    return example_site
