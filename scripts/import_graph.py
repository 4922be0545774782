"""Marlin's import graph between its top-level packages, function-level imports included.

import-linter sees only the imports it can find statically; a function-level import or an
`importlib` look-up can hide a cycle from a reader. This script reads every module with `ast`,
counts every import wherever it sits, and reports the strongly connected components between
`marlin.*` packages (there must be none) and each function-level import of Marlin's own code.

    python scripts/import_graph.py          # report; exit 1 if a cycle exists
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "marlin"


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported module, dotted
    line: int
    function_level: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path, module: str | None = None) -> list[Import]:
    """The imports of Marlin's modules that the file at `path` makes (as module `module`, by
    default the name its place in the tree gives it)."""
    module = module or module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[Import] = []

    def visit(node: ast.AST, depth: int) -> None:
        for child in ast.iter_child_nodes(node):
            inner = depth + isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend(Import(module, a.name, child.lineno, depth > 0) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(module, is_package, child)
                for alias in child.names:
                    # `from marlin.x import y` may name a submodule y; count the finer target.
                    candidate = f"{target}.{alias.name}"
                    found.append(Import(module, candidate, child.lineno, depth > 0))
            elif (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and child.func.attr in {"import_module", "find_spec"}
                and child.args
                and isinstance(child.args[0], ast.Constant)
                and str(child.args[0].value).startswith(f"{PACKAGE}.")
            ):
                found.append(Import(module, str(child.args[0].value), child.lineno, True))
            visit(child, inner)

    visit(tree, 0)
    return [i for i in found if i.target == PACKAGE or i.target.startswith(f"{PACKAGE}.")]


def top_package(dotted: str) -> str:
    parts = dotted.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def all_imports() -> list[Import]:
    result: list[Import] = []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        result.extend(imports_of(path))
    return result


def package_graph(imports: list[Import]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for imp in imports:
        source, target = top_package(imp.source), top_package(imp.target)
        if source != target and target != PACKAGE and source != PACKAGE:
            graph[source].add(target)
    return graph


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; returns only components with more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    nodes = set(graph) | {t for targets in graph.values() for t in targets}

    def connect(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(nodes):
        if node not in index:
            connect(node)
    return components


def main() -> int:
    imports = all_imports()
    components = strongly_connected_components(package_graph(imports))
    local = [i for i in imports if i.function_level]
    print(f"{len(imports)} imports of marlin.* modules, {len(local)} at function level")
    for imp in local:
        print(f"  function-level: {imp.source}:{imp.line} -> {imp.target}")
    print(f"{len(components)} strongly connected component(s) between marlin.* packages")
    for component in components:
        print("  cycle: " + ", ".join(component))
    return 1 if components else 0


if __name__ == "__main__":
    sys.exit(main())
