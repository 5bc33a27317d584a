"""``python -m build``: an sdist that can rebuild the native wheel, and that wheel."""

from __future__ import annotations

import fnmatch
import tarfile
import zipfile

from modelmux._accel import NATIVE_MODULES
from tests.packaging.conftest import Dists
from tests.packaging.helpers import project_version


def test_wheel_is_a_platform_wheel_with_the_native_modules(dists: Dists) -> None:
    version = project_version()
    name = dists.wheel.name
    assert name.startswith(f"modelmux-{version}-cp3"), name
    assert not name.endswith("-none-any.whl"), f"{name} is a pure wheel: the native build did not happen"
    names = zipfile.ZipFile(dists.wheel).namelist()
    for module in NATIVE_MODULES:
        assert fnmatch.filter(names, f"modelmux/_speedups/{module}.*.so"), (module, names)


def test_wheel_carries_both_licenses_and_the_console_script(dists: Dists) -> None:
    version = project_version()
    with zipfile.ZipFile(dists.wheel) as wheel:
        names = wheel.namelist()
        dist_info = f"modelmux-{version}.dist-info/"
        licenses = {n.rsplit("/", 1)[-1] for n in names if n.startswith(dist_info)}
        assert {"LICENSE-MIT", "LICENSE-APACHE"} <= licenses, licenses
        entry_points = wheel.read(dist_info + "entry_points.txt").decode()
    assert "modelmux = modelmux.cli.main:main" in entry_points
    dashboard = {"index.html", "app.js", "style.css", "uPlot.iife.min.js", "uPlot.min.css",
                 "uPlot.LICENSE"}  # package data: the dashboard works from the wheel alone
    assert {f"modelmux/web/static/{name}" for name in dashboard} <= set(names)
    # Sources and tests stay in the sdist.
    assert not [n for n in names if n.startswith("tests/") or n.endswith((".pyx", ".c"))]


def test_sdist_has_the_native_sources_and_the_tests(dists: Dists) -> None:
    version = project_version()
    prefix = f"modelmux-{version}/"
    with tarfile.open(dists.sdist) as sdist:
        names = {n.removeprefix(prefix) for n in sdist.getnames()}
    expected = {
        "_speedups/sse.pyx",  # without it the wheel built from this sdist would be pure Python
        "_speedups/_json_scan.pxi",  # included by two .pyx files
        "_speedups/_event_frame.pxi",  # included by eventstream.pyx and invoke_stream.pyx
        "_speedups/_payload_part.pxi",  # included by invoke_stream.pyx
        "_speedups/_head.pxi",  # included by http1.pyx and http1_client.pyx
        "_speedups/_request_fields.pxi",  # included by http1_client.pyx
        "_speedups/_response_head.pxi",  # included by http1_client.pyx
        "modelmux/_speedups/limits.pxd",  # cimported by gate.pyx
        "setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE-MIT", "LICENSE-APACHE",
        "tests/conftest.py", "tests/test_accel.py", "tests/packaging/test_wheel.py",
        "fuzz/translate_stream_fuzz.py",  # imported by tests/translate
        "packaging/config.toml.example",  # installed by the Homebrew formula
    }
    assert expected <= names, sorted(expected - names)
    # Generated and compiled files never ship: Cython regenerates the C from the .pyx.
    assert not [n for n in names if n.endswith((".so", ".pyc", ".c")) or "__pycache__" in n]
