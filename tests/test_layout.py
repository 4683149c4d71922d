"""The layout: no import circle in pipeline/ or bench/ (function-level imports included), and
the installed package never imports the benchmarks (bench/ is not installed)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "bench")


def module_files(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every module of :data:`PACKAGES` under `root`."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_names(module: str, path: Path) -> set[str]:
    """Every dotted name the module imports anywhere (top level, functions, branches), absolute."""
    names = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return names


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the project it imports (a ``from package import submodule``
    counts as importing the submodule, not the package)."""
    modules = module_files(root)
    graph = {}
    for module, path in modules.items():
        targets = set()
        names = imported_names(module, path)
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = {t for t in targets if not any(o.startswith(t + ".") for o in targets)}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycles_finds_a_circle_through_a_function_level_import(tmp_path):
    (tmp_path / "bench").mkdir()
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "__init__.py").write_text("")
    (tmp_path / "bench" / "__init__.py").write_text("")
    (tmp_path / "bench" / "a.py").write_text("from bench.b import f\n")
    (tmp_path / "bench" / "b.py").write_text("def f():\n    from bench import a\n")
    assert cycles(import_graph(tmp_path)) == [["bench.a", "bench.b"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle(package):
    graph = import_graph(PROJECT_ROOT)
    assert [c for c in cycles(graph) if c[0].split(".")[0] == package] == []


def test_the_package_does_not_import_the_benchmarks():
    graph = import_graph(PROJECT_ROOT)
    offending = {
        m: sorted(t for t in ts if t.split(".")[0] == "bench")
        for m, ts in graph.items()
        if m.split(".")[0] == "pipeline"
    }
    assert {m: ts for m, ts in offending.items() if ts} == {}


def test_the_benchmarks_take_no_path_from_their_own_location():
    """bench/ finds the checkout and the data through Settings fields, never from ``__file__``."""
    uses = [
        str(path.relative_to(PROJECT_ROOT))
        for path in sorted((PROJECT_ROOT / "bench").rglob("*.py"))
        if any(
            isinstance(n, ast.Name) and n.id == "__file__"
            for n in ast.walk(ast.parse(path.read_text()))
        )
    ]
    assert uses == []
