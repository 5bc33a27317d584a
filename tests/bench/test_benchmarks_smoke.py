"""benchmarks/ as a smoke run: it is outside ``testpaths``, so without this nothing there runs.

The micro-benchmarks run once each with ``--benchmark-disable``; every script answers
``--help``; the scripts whose load needs no outside tool run a tiny load, and the others run
one too when their tools (nginx, wrk, h2load, py-spy, valgrind) are installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import nginx

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
MICRO = sorted(p.name for p in BENCHMARKS.glob("test_*.py"))
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py")
                 if not p.name.startswith(("test_", "__")))
# Debian packages, or pip for py-spy, that the scripts' load runs need.
PACKAGES = {"nginx": "nginx", "wrk": "wrk", "h2load": "nghttp2-client",
            "py-spy": "py-spy (pip)", "valgrind": "valgrind"}
# script: (its tiny run's arguments, the tools it needs)
TINY: dict[str, tuple[list[str], list[str]]] = {
    "paced_stream.py": (["--streams", "40", "--events", "3", "--gap-ms", "0"], []),
    "cache_cpu.py": (["--requests", "200", "--rounds", "1"], []),
    "lean_path.py": (["--requests", "200"], ["nginx"]),
    "floor_relay.py": (["--requests", "200"], ["nginx"]),
    "soak_memory.py": (["--requests", "2000", "--warmup", "200", "--every", "0.5"],
                       ["nginx", "h2load"]),
    "bench_vs_wrk.py": (["--pairs", "1", "--duration", "0.5"], ["nginx", "wrk"]),
    "profile_layers.py": (["--duration", "1", "--rate", "100", "--top", "3"],
                          ["nginx", "py-spy"]),
    "callgrind_proxy.py": (["--http1", "fast", "--requests", "20", "--streams", "2",
                            "--warmup", "10"],
                           ["nginx", "valgrind"]),
    "callgrind_access.py": (["--lines", "200"], ["valgrind"]),
    "callgrind_tenancy.py": (["--requests", "20", "--scenario", "busy"], ["valgrind"]),
}
LIBRARIES = {"nginx.py"}  # helpers of the scripts, no command line of their own
SLOW_ONLY = {"macro.py": "its fixed 5000-request CPU runs take ~15 s even with "
             "--modelmux-mock --no-nginx --duration 0.3; --help covers its imports"}


def python(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def test_every_micro_benchmark_runs_once() -> None:
    assert MICRO, "no benchmarks/test_*.py found"
    done = python("-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "--benchmark-disable",
                  *(f"benchmarks/{name}" for name in MICRO), timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    passed = {m.group(1) for m in re.finditer(r"^PASSED benchmarks/(test_\w+\.py)::",
                                              done.stdout, re.MULTILINE)}
    assert passed == set(MICRO), done.stdout[-3000:]
    assert not re.search(r"\d+ (skipped|xfailed|deselected)", done.stdout), done.stdout[-1000:]


def test_every_script_is_accounted_for() -> None:
    assert set(SCRIPTS) == set(TINY) | LIBRARIES | set(SLOW_ONLY)


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_imports_and_answers_help(script: str) -> None:
    done = python(f"benchmarks/{script}", "--help", timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    if script not in LIBRARIES:
        assert done.stdout.startswith("usage: "), done.stdout[:500]


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY))
def test_script_tiny_run(script: str) -> None:
    args, tools = TINY[script]
    missing = [tool for tool in tools if _which(tool) is None]
    if missing:
        packages = ", ".join(PACKAGES[tool] for tool in missing)
        pytest.skip(f"needs {', '.join(missing)}: install {packages}")
    done = python(f"benchmarks/{script}", *args, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.strip(), done.stderr[-2000:]
    errors = re.findall(r"errors:? (\d+)", done.stdout)
    assert all(n == "0" for n in errors), done.stdout[-2000:]


def _which(tool: str) -> str | None:
    """nginx as the scripts find it (Debian's is in /usr/sbin, often off PATH)."""
    return nginx.binary() if tool == "nginx" else shutil.which(tool)
