"""The package's shape, kept by CI: one boundary to MLflow, no import cycles, small modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ticker_registry"
#: The one package that may import mlflow (the adapter, its retries, packaging and the
#: pyfunc wrapper shipped inside each version).
BOUNDARY = "ticker_registry.store"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path) -> set[str]:
    """Every module ``module`` imports, anywhere in the file (functions and TYPE_CHECKING too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_only_the_store_imports_mlflow():
    offenders = {name: sorted(i for i in _imports(name, path) if i.split(".")[0] == "mlflow")
                 for name, path in _modules().items()
                 if name != BOUNDARY and not name.startswith(BOUNDARY + ".")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_cli_and_the_package_import_no_mlflow():
    code = ("import sys, ticker_registry, ticker_registry.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_import_cycles_even_under_type_checking():
    modules = _modules()
    graph = {name: {i for i in _imports(name, path) if i in modules and i != name}
             for name, path in modules.items()}
    # a package's __init__ re-exporting its own modules is not a cycle of the design
    for name in graph:
        graph[name] = {i for i in graph[name] if not name.startswith(i + ".")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for name in graph:
        if name not in index:
            visit(name)
    assert cycles == []


@pytest.mark.parametrize("name", sorted(_modules()))
def test_every_module_is_at_most_400_lines(name):
    lines = len(_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by job (see STYLE.md)"


def test_the_readme_code_map_lists_every_module_once():
    import re

    readme = (PACKAGE.parent / "README.md").read_text()
    section = readme.split("## Code map", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)
    actual = sorted([p.name for p in PACKAGE.glob("*.py")]
                    + [f"{p.name}/" for p in PACKAGE.iterdir()
                       if p.is_dir() and (p / "__init__.py").is_file()])
    assert len(listed) == len(set(listed)), "a module is listed twice"
    assert sorted(listed) == actual
