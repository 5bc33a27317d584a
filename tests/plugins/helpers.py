"""Installing the example plugin (a real package, built offline) and writing tiny stand-in
distributions (a ``.dist-info`` with entry points) for plugins that are broken on purpose."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from tests.e2e.proc import LOOPBACK_SERVER, ServeProcess

EXAMPLE = Path(__file__).parent / "example_plugin"


def install_example(target: Path) -> Path:
    """Install the example plugin into ``target`` (offline, no dependencies) from a copy, so the
    build leaves nothing in the source tree; returns ``target``.

    ``pip install --target`` when the installed setuptools can build a wheel (70.1+, or with
    the ``wheel`` package); else the layout of a develop install: the package copied next to
    the ``.egg-info`` (entry points included) setuptools makes from the plugin's pyproject.
    """
    source = target.parent / "example_plugin_src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                   "__pycache__"))
    if _can_build_wheels():
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                   "--no-build-isolation", "--no-index", "--disable-pip-version-check",
                   "--target", str(target), str(source)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return target
    target.mkdir(parents=True)
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", "import setuptools; setuptools.setup()",
                           "egg_info", "--egg-base", str(target)],
                          cwd=source, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert next(target.glob("*.egg-info/entry_points.txt"), None) is not None
    package = "modelmux_example_plugin"
    shutil.copytree(source / package, target / package)
    return target


def _can_build_wheels() -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = (int(x) for x in version("setuptools").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


def fake_dist(where: Path, name: str, entry_points: dict[str, dict[str, str]],
              modules: dict[str, str]) -> Path:
    """A distribution ``name`` in ``where``: its modules and a ``.dist-info`` declaring
    ``entry_points`` ({group: {entry name: "module:attr"}}); returns ``where``."""
    info = where / f"{name}-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items())
        for group, points in entry_points.items()))
    for module, text in modules.items():
        (where / f"{module}.py").write_text(text)
    return where


def serve(home: Path, site: Path, config: str) -> ServeProcess:
    """``modelmux serve`` on loopback with ``config``, the plugins in ``site`` importable."""
    path = home / "config.toml"
    path.write_text(LOOPBACK_SERVER + config)
    return ServeProcess(["serve", "--config", str(path)], env={"PYTHONPATH": str(site)},
                        home=home)
