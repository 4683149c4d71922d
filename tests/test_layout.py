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


#: The size limits of the package: lines per module, and per function or method.
MODULE_LINES = 400
FUNCTION_LINES = 60


def function_lines(path: Path) -> dict[str, int]:
    """``name:line`` -> length in lines of every function and method in the file, from its
    ``def`` to the end of its body (decorators excluded, docstrings and comments included).
    """
    return {
        f"{node.name}:{node.lineno}": node.end_lineno - node.lineno + 1
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


def oversized(root: Path) -> list[str]:
    """Modules of pipeline/ over :data:`MODULE_LINES` and functions over :data:`FUNCTION_LINES`."""
    found = []
    for path in sorted((root / "pipeline").rglob("*.py")):
        name = path.relative_to(root).as_posix()
        n_lines = len(path.read_text().splitlines())
        if n_lines > MODULE_LINES:
            found.append(f"{name}: {n_lines} lines")
        found += [
            f"{name}:{function} {n} lines"
            for function, n in function_lines(path).items()
            if n > FUNCTION_LINES
        ]
    return found


def test_oversized_counts_from_the_def_without_decorators(tmp_path):
    (tmp_path / "pipeline").mkdir()
    body = "".join(f"    x{i} = {i}\n" for i in range(58))
    short = f"@decorator\n@another\ndef short():\n    '''Doc.'''\n{body}"
    method_body = body.replace("    ", "        ")
    long = f"class C:\n    def long(self):\n        '''Doc.'''\n        y = 0\n{method_body}"
    (tmp_path / "pipeline" / "a.py").write_text(short + "\n" * 340)
    (tmp_path / "pipeline" / "b.py").write_text(long)
    assert function_lines(tmp_path / "pipeline" / "a.py") == {"short:3": 60}
    assert oversized(tmp_path) == ["pipeline/a.py: 402 lines", "pipeline/b.py:long:2 61 lines"]


def test_modules_and_functions_stay_under_the_size_limits():
    assert oversized(PROJECT_ROOT) == []
