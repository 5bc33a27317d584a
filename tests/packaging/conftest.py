"""Session fixtures for the packaging tests: one sdist + wheel build, one .deb built from it.

The artifacts are built from a clean copy of the working tree (no .git, no in-place native
build, no caches), the way CI's compiler-less leg builds from ``git archive``. Building them
takes most of this directory's run time, so each is built once per session. Under
``MODELMUX_PURE_PYTHON=1`` (CI's pure-Python leg) they are skipped: the artifacts do not depend
on which twin the test process uses, and the native leg already built and checked them.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.packaging.helpers import PACKAGING, REPO, clean_env, require_tool, run

JUNK = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", ".venv", "venv", "__pycache__",
                              ".*_cache", ".hypothesis", ".benchmarks", "*.so", "*.py[cod]", "*.c")


@dataclass(frozen=True)
class Dists:
    sdist: Path
    wheel: Path


def _skip_in_pure_leg() -> None:
    if os.environ.get("MODELMUX_PURE_PYTHON") == "1":
        pytest.skip("artifacts are built and checked in the native leg; MODELMUX_PURE_PYTHON=1 "
                    "does not change them")


def _build_frontend(scratch: Path) -> str:
    """An interpreter that has ``build``: this one, else a scratch venv with it installed."""
    if run([sys.executable, "-c", "import build"], check=False).returncode == 0:
        return sys.executable
    venv = scratch / "build-venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "build"])
    return python


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """sdist and wheel from ``python -m build`` (the wheel is built from the sdist), native required."""
    _skip_in_pure_leg()
    scratch = tmp_path_factory.mktemp("dists")
    source = scratch / "src"
    shutil.copytree(REPO, source, ignore=JUNK)
    out = scratch / "out"
    frontend = _build_frontend(scratch)
    run([frontend, "-m", "build", "--outdir", str(out), str(source)], timeout=600,
        env=clean_env(MODELMUX_REQUIRE_NATIVE="1"))
    (sdist,) = out.glob("modelmux-*.tar.gz")
    (wheel,) = out.glob("modelmux-*.whl")
    return Dists(sdist=sdist, wheel=wheel)


@pytest.fixture(scope="session")
def deb(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb from packaging/debian/build-deb.sh, fed the session's wheel."""
    require_tool("dpkg-deb")
    require_tool("bash")
    out = tmp_path_factory.mktemp("deb")
    # gzip instead of the default xz: the same package, built in a third of the time.
    proc = run(["bash", str(PACKAGING / "debian" / "build-deb.sh"), "--wheel", str(dists.wheel),
                "--out", str(out), "--compress", "gzip"], timeout=600, env=clean_env(PYTHON=sys.executable))
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.parent == out, proc.stdout
    return path


@pytest.fixture(scope="session")
def deb_root(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb unpacked with ``dpkg-deb -x`` into a temporary root."""
    root = tmp_path_factory.mktemp("deb-root")
    run(["dpkg-deb", "-x", str(deb), str(root)])
    return root
