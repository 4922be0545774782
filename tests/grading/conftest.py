"""A small real Python library under git, mirrored, and the sandbox tools venv built once."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from marlin.sandbox import Mount
from marlin.sandbox.tools import tools_mount
from marlin.sandbox.workspace import create_workspace, remove_workspace

GIT_ENV = {
    "GIT_AUTHOR_NAME": "dave",
    "GIT_AUTHOR_EMAIL": "dave@example.org",
    "GIT_COMMITTER_NAME": "dave",
    "GIT_COMMITTER_EMAIL": "dave@example.org",
    "GIT_CONFIG_GLOBAL": os.devnull,
}

LIBRARY = {
    "calc/__init__.py": "from calc.ops import add, mean, mul\n\n__all__ = ['add', 'mean', 'mul']\n",
    # mean() has the bug the hidden tests catch: floor division.
    "calc/ops.py": (
        "def add(a, b):\n    return a + b\n\n\n"
        "def mul(a, b):\n    return a * b\n\n\n"
        "def mean(values):\n    return sum(values) // len(values)\n"
    ),
    "tests/__init__.py": "",
    "tests/test_ops.py": (
        "from calc import add, mul\n\n\n"
        "def test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_mul():\n    assert mul(4, 5) == 20\n"
    ),
}


@pytest.fixture(scope="session")
def tools() -> Mount:
    # Shared across sessions and with tests/sandbox: building it downloads from the registry.
    root = Path(os.environ.get("MARLIN_TEST_TOOLS_ROOT", "/tmp/marlin-test-tools"))
    return tools_mount(root)


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A bare mirror of the calc library, and its base commit."""
    base = tmp_path_factory.mktemp("library")
    src = base / "src"
    for name, text in LIBRARY.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "calc 1.0")
    mirror = base / "mirror.git"
    git(base, "clone", "-q", "--mirror", str(src), str(mirror))
    return mirror, git(src, "rev-parse", "HEAD")


@pytest.fixture
def ws(library: tuple[Path, str], tmp_path: Path) -> Iterator[Path]:
    path = create_workspace(library[0], library[1], tmp_path / "workspaces")
    yield path
    remove_workspace(path)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    ).stdout.strip()
