"""Marlin's layers hold: no cycles between packages (function-level imports counted), the
import-linter contracts pass, and no module hides a dependency on Marlin's own code behind an
`importlib` look-up or an ImportError fallback (docs/decisions/0003-layers.md)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from marlin.agents.providers import PROVIDERS
from marlin.sandbox.core import BACKENDS

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import import_graph  # noqa: E402

# Django loads models only once every app is ready, so AppConfig.ready() is the one place where
# an app must import at function level (to connect its signal receivers).
FUNCTION_LEVEL_ALLOWED = {"apps.py"}


def marlin_modules() -> list[Path]:
    return [p for p in (ROOT / "marlin").rglob("*.py") if "migrations" not in p.parts]


def test_there_are_no_cycles_between_marlins_packages_counting_function_level_imports():
    imports = import_graph.all_imports()
    assert len(imports) > 500, "the script must see Marlin's imports"
    assert import_graph.strongly_connected_components(import_graph.package_graph(imports)) == []


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function():
    graph = {"marlin.tasks": {"marlin.catalog"}, "marlin.catalog": {"marlin.audit"}}
    assert import_graph.strongly_connected_components(graph) == []
    graph["marlin.audit"] = {"marlin.tasks"}
    assert import_graph.strongly_connected_components(graph) == [
        ["marlin.audit", "marlin.catalog", "marlin.tasks"]
    ]


def test_the_import_reader_counts_imports_inside_functions_and_importlib_lookups(tmp_path):
    module = tmp_path / "probe.py"
    module.write_text(
        "import importlib\n\n\ndef f():\n    from marlin.review import models\n"
        "    return importlib.import_module('marlin.exports.jobs'), models\n"
    )
    found = import_graph.imports_of(module, "marlin.tasks.probe")
    targets = {(i.target, i.function_level) for i in found}
    assert ("marlin.review.models", True) in targets
    assert ("marlin.exports.jobs", True) in targets


def test_function_level_imports_of_marlin_are_only_in_app_ready():
    offenders = [
        f"{i.source}:{i.line} -> {i.target}"
        for i in import_graph.all_imports()
        if i.function_level and not i.source.endswith(".apps")
    ]
    assert offenders == []


def test_the_import_linter_contracts_pass():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "4 kept, 0 broken" in result.stdout


def _fallbacks(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            caught = {
                ast.unparse(h.type) for h in node.handlers if h.type is not None
            }  # e.g. "ImportError", "(ImportError, OSError)"
            imports_marlin = any(
                isinstance(n, ast.Import | ast.ImportFrom)
                and any(
                    name.startswith("marlin")
                    for name in (
                        [a.name for a in n.names] if isinstance(n, ast.Import) else [n.module or ""]
                    )
                )
                for stmt in node.body
                for n in ast.walk(stmt)
            )
            if imports_marlin and any("ImportError" in c or "ModuleNotFound" in c for c in caught):
                found.append(f"{path.name}:{node.lineno} ImportError fallback")
        if isinstance(node, ast.Attribute) and node.attr == "find_spec":
            found.append(f"{path.name}:{node.lineno} find_spec")
    return found


def test_no_module_falls_back_when_one_of_marlins_own_modules_is_missing():
    offenders = [f for path in marlin_modules() for f in _fallbacks(path)]
    assert offenders == []


@pytest.mark.parametrize(
    "dotted", sorted(PROVIDERS.values()) + sorted(BACKENDS.values()), ids=lambda d: d
)
def test_every_swappable_part_named_by_dotted_path_exists(dotted):
    # Providers and sandbox backends are a dict from name to dotted path, imported when chosen
    # (STYLE rule 2); a typo there must fail here, not at a user's first run.
    module_name, _, attribute = dotted.rpartition(".")
    assert callable(getattr(importlib.import_module(module_name), attribute))
