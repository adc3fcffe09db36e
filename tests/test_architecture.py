"""The package's shape: imports flow one way, from the meters up to the two front ends.

The import graph is built with ``ast`` from every module, counting imports inside
functions and under ``TYPE_CHECKING`` too: a cycle hidden behind a function-level
import is still a cycle. CONTRIBUTING.md draws the same map.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_energy"

#: Each top-level part of the package and its layer: a module may import its own
#: layer and lower ones, never a higher one.
LAYERS = {
    "record": 0,
    "stats": 0,
    "output_files": 0,
    "frozen": 0,
    "student_t": 0,
    "record_json": 0,
    "record_lines": 0,
    "record_verdicts": 0,
    "record_schema": 0,
    "meters": 1,
    "config": 2,
    "carbon": 3,
    "measure": 4,
    "storage": 5,
    "gate": 6,
    "report": 7,
    "cli": 8,
    "ab": 8,
    "__main__": 8,
    "plugin": 9,
    "hookspecs": 9,
}


def module_name(path: Path) -> str:
    parts = ["pytest_energy", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> Iterator[str]:
    """Every module of the package that ``name`` imports, anywhere in its code."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("pytest_energy"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if not target.startswith("pytest_energy"):
                continue
            # ``from pkg import submodule`` imports the submodule.
            found = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            yield from found or [target]


GRAPH = {
    name: {target for target in imports(name) if target in MODULES and target != name}
    for name in MODULES
}


def part(name: str) -> str:
    return name.split(".")[1] if "." in name else ""


def edges() -> Iterator[tuple[str, str]]:
    # The root package is the lazy public facade: it imports everything only for type
    # checkers, and others import it only for ``__version__``.
    for source, targets in GRAPH.items():
        if source == "pytest_energy":
            continue
        for target in targets:
            if target != "pytest_energy":
                yield source, target


def test_every_part_of_the_package_has_a_layer() -> None:
    unplaced = sorted({part(name) for name in MODULES} - set(LAYERS) - {""})
    assert not unplaced, f"add {unplaced} to LAYERS here and to the map in CONTRIBUTING.md"


def test_lower_layers_never_import_higher_ones() -> None:
    backwards = [
        f"{source} -> {target}"
        for source, target in edges()
        if LAYERS[part(target)] > LAYERS[part(source)]
    ]
    assert backwards == []


@pytest.mark.parametrize(
    ("importer", "forbidden"),
    [
        ("meters", {"record", "stats", "config", "measure", "gate", "report", "cli", "plugin"}),
        ("gate", {"meters", "measure"}),
        ("report", {"meters", "measure"}),
        ("cli", {"plugin", "meters"}),
        ("storage", {"meters", "measure", "gate"}),
    ],
)
def test_named_boundaries(importer: str, forbidden: set[str]) -> None:
    crossings = [
        f"{source} -> {target}"
        for source, target in edges()
        if part(source) == importer and part(target) in forbidden
    ]
    assert crossings == []


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components: any component of two or more is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for source, target in edges():
        graph[source].add(target)

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    assert cycles == []


def test_the_graph_sees_function_level_imports() -> None:
    """The check itself: an import inside a function is an edge like any other."""
    assert "pytest_energy.report.html" in GRAPH["pytest_energy.plugin.session_end"]


def test_no_module_is_over_500_lines() -> None:
    long = {
        name: lines
        for name, path in MODULES.items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert long == {}
