"""Native extension list and the optional build.

Every module in ``_speedups/`` compiles to ``modelmux._speedups.<name>``. The build is optional:
without Cython or a C compiler the package installs pure Python, unless
``MODELMUX_REQUIRE_NATIVE=1`` is set, in which case a failed build is an error.
``MODELMUX_PURE_PYTHON=1`` skips it. The switches mean what ``modelmux/_accel.py`` says (read
from that file, so the rule is written once); both at once is an error.
"""

import importlib.util
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent


def _switches():
    spec = importlib.util.spec_from_file_location("modelmux_build_switches", HERE / "modelmux" / "_accel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SWITCHES = _switches()
if SWITCHES.conflict():
    sys.exit(f"modelmux: {SWITCHES.conflict()}")
REQUIRE_NATIVE = SWITCHES.native_required()
SKIP_NATIVE = SWITCHES.pure_forced()


def extensions():
    if SKIP_NATIVE:
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        if REQUIRE_NATIVE:
            raise
        print("modelmux: Cython not available, installing the pure-Python build", file=sys.stderr)
        return []
    from setuptools import Extension

    if REQUIRE_NATIVE and not list((HERE / "_speedups").glob("*.pyx")):
        raise RuntimeError("MODELMUX_REQUIRE_NATIVE=1 but _speedups/*.pyx is missing (incomplete sdist?)")

    exts = [
        Extension(f"modelmux._speedups.{pyx.stem}", [str(pyx.relative_to(HERE))], extra_compile_args=["-O3"])
        for pyx in sorted((HERE / "_speedups").glob("*.pyx"))
    ]
    # the root on the include path: ``modelmux/_speedups/<name>.pxd`` declares a module's C
    # layout for another to cimport (``gate`` reads ``limits``' buckets)
    return cythonize(exts, language_level=3, include_path=[str(HERE)],
                     compiler_directives={"boundscheck": False, "wraparound": False})


class OptionalBuildExt(build_ext):
    """Builds the extensions, falling back to pure Python unless native is required."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing or broken
            self._fallback(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._fallback(exc)

    def _fallback(self, exc):
        if REQUIRE_NATIVE:
            raise
        print(f"modelmux: native build failed ({exc}); installing the pure-Python build", file=sys.stderr)


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
