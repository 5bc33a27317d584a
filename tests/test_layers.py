"""The package's import graph is layered and acyclic.

Every ``import`` and ``from`` statement under ``modelmux/`` counts, wherever it stands: inside a
function, or under ``if TYPE_CHECKING:`` (a type used across layers belongs to the lower one).
The native twins count too: the ``import``, ``from ... import`` and ``cimport`` lines of each
``_speedups/<name>.pyx``, of the ``.pxi`` files it includes and of its
``modelmux/_speedups/<name>.pxd`` are the edges of ``modelmux._speedups.<name>``, ranked at
the layer of its pure twin (the second argument of the ``_accel.load`` that picks it), and
each such ``_accel.load`` is an edge from its caller to both twins. The layer order is read
from the fenced ``layers`` block in docs/architecture.md, so the page and this test cannot
disagree.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "modelmux"
DOC = REPO / "docs" / "architecture.md"
NATIVE = REPO / "_speedups"
SPEEDUPS = "modelmux._speedups"


@dataclass(frozen=True, slots=True)
class Edge:
    """``source`` imports ``target`` at ``line`` of the source's file."""

    source: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} (line {self.line})"


def declared_layers(text: str) -> list[str]:
    """The first word of each line of the fenced ``layers`` block, lowest first."""
    match = re.search(r"^```layers\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    if match is None:
        raise AssertionError(f"{DOC} has no ```layers block")
    return [line.split()[0] for line in match.group(1).splitlines() if line.strip()]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _known(name: str, modules: dict[str, Path]) -> str:
    """The innermost module of ``modules`` that ``name`` (a module or a name in one) lies in."""
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Edge]:
    """Every edge from ``module`` to another module of the package, with its line."""
    edges = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.Call) and _is_accel_load(node):
            targets = [f"{SPEEDUPS}.{node.args[0].value}", node.args[1].value]  # type: ignore[attr-defined]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [f"{origin}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "modelmux" or target.startswith("modelmux."):
                found = _known(target, modules)
                edge = Edge(module, found, node.lineno)
                if found != module and edge not in edges:
                    edges.append(edge)
    return edges


def _is_accel_load(node: ast.Call) -> bool:
    """``_accel.load("name", "modelmux.pure")``, both arguments literal strings."""
    func = node.func
    return (isinstance(func, ast.Attribute) and func.attr == "load"
            and isinstance(func.value, ast.Name) and func.value.id == "_accel"
            and len(node.args) == 2
            and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args))


def twins() -> dict[str, str]:
    """``modelmux._speedups.<name>`` → its pure twin, from every ``_accel.load`` call.

    Raises:
        AssertionError: one native module is loaded with two different pure twins.
    """
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and _is_accel_load(node):
                native, pure = (f"{SPEEDUPS}.{node.args[0].value}",  # type: ignore[attr-defined]
                                node.args[1].value)  # type: ignore[attr-defined]
                assert found.setdefault(native, pure) == pure, (
                    f"{native} is loaded as the twin of both {found[native]} and {pure}")
    return found


_CYTHON_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(?P<origin>[\w.]+)[ \t]+c?import[ \t]+"
    r"(?P<names>\([^)]*\)|[^\n#]*)"
    r"|c?import[ \t]+(?P<modules>[^\n#]*))", re.MULTILINE)
_INCLUDE = re.compile(r"""^[ \t]*include[ \t]+["']([^"']+)["']""", re.MULTILINE)


def cython_imports(text: str) -> list[tuple[str, int]]:
    """The modules and names (``module.name``) a Cython source imports or cimports, with their
    lines; a regex, as Cython is not Python (``cdef`` ...), reading the usual forms: ``import a,
    b as c``, ``from a import x, y`` and ``from a cimport (x,\n y)``."""
    found = []
    for match in _CYTHON_IMPORT.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        if match.group("origin"):
            names = match.group("names").strip("() \t")
            for name in re.split(r"[,\s]+as[\s]+\w+|,", names):
                if name.strip():
                    found.append((f"{match.group('origin')}.{name.strip()}", line))
        else:
            for module in match.group("modules").split(","):
                if module.strip():
                    found.append((module.split()[0], line))
    return found


def native_sources() -> dict[str, list[Path]]:
    """``modelmux._speedups.<name>`` → its ``.pyx`` and, when there is one, its ``.pxd``."""
    sources = {}
    for pyx in sorted(NATIVE.glob("*.pyx")):
        pxd = PACKAGE / "_speedups" / f"{pyx.stem}.pxd"
        sources[f"{SPEEDUPS}.{pyx.stem}"] = [pyx] + ([pxd] if pxd.exists() else [])
    return sources


def native_imports_of(module: str, files: list[Path], modules: dict[str, Path]) -> list[Edge]:
    """Every edge from the native ``module`` (its sources and their includes) to another module
    of the package; an import from an included file is reported at its ``include`` line."""
    edges = []
    for path in files:
        text = path.read_text()
        found = cython_imports(text)
        for include in _INCLUDE.finditer(text):
            at = text.count("\n", 0, include.start()) + 1
            found += [(name, at) for name, _ in
                      cython_imports((path.parent / include.group(1)).read_text())]
        for target, line in found:
            if target == "modelmux" or target.startswith("modelmux."):
                edge = Edge(module, _known(target, modules), line)
                if edge.target != module and edge not in edges:
                    edges.append(edge)
    return edges


def layer_of(module: str) -> str:
    """``modelmux.routing.router`` → ``routing``; ``modelmux.errors`` → ``errors``; the
    package's own ``__init__`` → ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def rank_layer(module: str, pure_twins: dict[str, str]) -> str:
    """The layer ``module`` ranks at: its pure twin's for a native twin, else its own."""
    return layer_of(pure_twins.get(module, module))


def all_edges() -> list[Edge]:
    natives = native_sources()
    modules = {**package_modules(), **dict.fromkeys(natives, NATIVE)}
    return ([edge for name, path in package_modules().items()
             for edge in imports_of(name, path, modules)]
            + [edge for name, files in natives.items()
               for edge in native_imports_of(name, files, modules)])


def cycles(edges: list[Edge]) -> list[list[Edge]]:
    """The edges inside each strongly connected component of more than one module."""
    graph: dict[str, list[Edge]] = defaultdict(list)
    for edge in edges:
        graph[edge.source].append(edge)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(start: str) -> None:
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, pending = work[-1]
            edge = next(pending, None)
            if edge is not None:
                if edge.target not in index:
                    index[edge.target] = low[edge.target] = len(index)
                    stack.append(edge.target)
                    on_stack.add(edge.target)
                    work.append((edge.target, iter(graph[edge.target])))
                elif edge.target in on_stack:
                    low[node] = min(low[node], index[edge.target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)

    for node in list(graph):
        if node not in index:
            visit(node)
    return [[edge for edge in edges if edge.source in component and edge.target in component]
            for component in components]


def _report(title: str, edges: list[Edge]) -> str:
    return title + "\n" + "\n".join(f"  {edge}" for edge in sorted(edges, key=str))


def test_layers_are_declared_once_and_cover_the_package() -> None:
    layers = declared_layers(DOC.read_text())
    assert len(layers) == len(set(layers)), f"a layer is listed twice: {layers}"
    present = {layer_of(name) for name in package_modules()}
    assert present - set(layers) == set(), "packages missing from docs/architecture.md"
    assert set(layers) - present == set(), "layers that no longer exist"


def test_no_import_cycles() -> None:
    found = cycles(all_edges())
    assert not found, "\n".join(_report("import cycle:", component) for component in found)


def test_no_upward_imports() -> None:
    rank = {name: position for position, name in enumerate(declared_layers(DOC.read_text()))}
    pure = twins()
    upward = [edge for edge in all_edges()
              if rank[rank_layer(edge.target, pure)] > rank[rank_layer(edge.source, pure)]]
    assert not upward, _report("imports from a lower layer to a higher one:", upward)


def test_every_native_twin_is_loaded_through_accel_with_its_pure_twin() -> None:
    pure = twins()
    assert sorted(pure) == sorted(native_sources()), "a native twin no _accel.load names"
    modules = package_modules()
    assert [p for p in pure.values() if p not in modules] == [], "a pure twin that is no module"


@pytest.mark.parametrize("source, expected", [
    ("import modelmux.a.b\nfrom modelmux.a import c\n", ["modelmux.a.b", "modelmux.a.c"]),
    ("from . import c\nfrom .b import x\nfrom .. import errors\n",
     ["modelmux.a.c", "modelmux.a.b", "modelmux.errors"]),
    ("if TYPE_CHECKING:\n    from modelmux.a.b import T\ndef f():\n    import modelmux.a\n",
     ["modelmux.a.b", "modelmux.a"]),
])
def test_the_walk_sees_every_kind_of_import(tmp_path: Path, source: str, expected: list[str]
                                            ) -> None:
    path = tmp_path / "m.py"
    path.write_text(source)
    modules = {name: tmp_path for name in
               ("modelmux", "modelmux.errors", "modelmux.a", "modelmux.a.b", "modelmux.a.c",
                "modelmux.a.m")}
    assert [edge.target for edge in imports_of("modelmux.a.m", path, modules)] == expected


def test_the_walk_sees_accel_loads(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text('from modelmux import _accel\n\nX = _accel.load("sse", "modelmux.a.b").X\n'
                    'Y = _accel.load(name, "modelmux.a.c")\n')
    modules = {name: tmp_path for name in
               ("modelmux", "modelmux._accel", "modelmux.a", "modelmux.a.b", "modelmux.a.c",
                "modelmux.a.m", "modelmux._speedups.sse")}
    assert [str(edge) for edge in imports_of("modelmux.a.m", path, modules)] == [
        "modelmux.a.m -> modelmux._accel (line 1)",
        "modelmux.a.m -> modelmux._speedups.sse (line 3)",
        "modelmux.a.m -> modelmux.a.b (line 3)"]


def test_the_cython_walk_sees_imports_cimports_and_includes(tmp_path: Path) -> None:
    (tmp_path / "part.pxi").write_text("from libc.string cimport memcmp\n"
                                       "from modelmux.a import b as _b\n")
    pyx = tmp_path / "gate.pyx"
    pyx.write_text("# cython: language_level=3\n"
                   "from cpython.bytes cimport PyBytes_AS_STRING\n"
                   "from modelmux._speedups.limits cimport DeploymentLimits, TokenBucket\n"
                   "import time as _time, modelmux.c\n"
                   "from modelmux.a.m import (\n    x,\n    y as _y,\n)\n"
                   'include "part.pxi"\n'
                   "cdef class Gate:\n    cdef object importer  # import nothing here\n")
    modules = {name: tmp_path for name in ("modelmux", "modelmux.a", "modelmux.a.b",
                                           "modelmux.a.m", "modelmux.c",
                                           "modelmux._speedups.limits")}
    assert [str(edge) for edge in native_imports_of("modelmux._speedups.gate", [pyx], modules)] == [
        "modelmux._speedups.gate -> modelmux._speedups.limits (line 3)",
        "modelmux._speedups.gate -> modelmux.c (line 4)",
        "modelmux._speedups.gate -> modelmux.a.m (line 5)",
        "modelmux._speedups.gate -> modelmux.a.b (line 9)"]
    assert rank_layer("modelmux._speedups.gate", {"modelmux._speedups.gate":
                                                  "modelmux.pipeline._gate_py"}) == "pipeline"


def test_a_cycle_and_an_upward_edge_are_reported_with_their_lines() -> None:
    edges = [Edge("m.a", "m.b", 3), Edge("m.b", "m.c", 4), Edge("m.c", "m.a", 5),
             Edge("m.c", "m.d", 6)]
    (component,) = cycles(edges)
    assert sorted(map(str, component)) == ["m.a -> m.b (line 3)", "m.b -> m.c (line 4)",
                                           "m.c -> m.a (line 5)"]
