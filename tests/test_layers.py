"""The package's import graph is layered and acyclic.

Every ``import`` and ``from`` statement under ``modelmux/`` counts, wherever it stands: inside a
function, or under ``if TYPE_CHECKING:`` (a type used across layers belongs to the lower one).
The layer order is read from the fenced ``layers`` block in docs/architecture.md, so the page
and this test cannot disagree.
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


def layer_of(module: str) -> str:
    """``modelmux.routing.router`` → ``routing``; ``modelmux.errors`` → ``errors``; the
    package's own ``__init__`` → ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def all_edges() -> list[Edge]:
    modules = package_modules()
    return [edge for name, path in modules.items() for edge in imports_of(name, path, modules)]


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
    upward = [edge for edge in all_edges()
              if rank[layer_of(edge.target)] > rank[layer_of(edge.source)]]
    assert not upward, _report("imports from a lower layer to a higher one:", upward)


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


def test_a_cycle_and_an_upward_edge_are_reported_with_their_lines() -> None:
    edges = [Edge("m.a", "m.b", 3), Edge("m.b", "m.c", 4), Edge("m.c", "m.a", 5),
             Edge("m.c", "m.d", 6)]
    (component,) = cycles(edges)
    assert sorted(map(str, component)) == ["m.a -> m.b (line 3)", "m.b -> m.c (line 4)",
                                           "m.c -> m.a (line 5)"]
