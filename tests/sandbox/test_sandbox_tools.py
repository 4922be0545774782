"""The tools venv: built once from Debian's python, usable inside the sandbox with no setup."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from marlin.sandbox import TOOLS_PATH, Mount, run
from marlin.sandbox.tools import ensure_tools, tools_mount


@pytest.fixture(scope="session")
def tools_root() -> Path:
    # Shared across sessions on purpose: building the venv downloads from the package registry.
    root = Path(os.environ.get("MARLIN_TEST_TOOLS_ROOT", "/tmp/marlin-test-tools"))
    ensure_tools(root)
    return root


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A small pure-Python repository with one passing and one failing test, under git."""
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "tests" / "test_calc.py").write_text(
        "from calc import add\n\n\n"
        "def test_adds():\n    assert add(2, 3) == 5\n\n\n"
        "def test_is_wrong():\n    assert add(2, 2) == 5\n"
    )
    (repo / "conftest.py").write_text("")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


@pytest.mark.slow
def test_python_m_pytest_works_on_a_pure_python_repository(
    tools_root: Path, repository: Path
) -> None:
    result = run(
        ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        workdir=repository,
        mounts=[tools_mount(tools_root)],
        timeout=120,
    )

    assert result.returncode == 1, result
    assert "1 failed, 1 passed" in result.stdout
    assert "test_is_wrong" in result.stdout


@pytest.mark.slow
def test_ruff_and_bandit_run_from_the_tools_mount(tools_root: Path, repository: Path) -> None:
    (repository / "unsafe.py").write_text(
        "import os\nimport subprocess\n\nsubprocess.call('ls', shell=True)\n"
    )
    mount = tools_mount(tools_root)

    ruff = run(
        ["ruff", "check", "--no-cache", "--isolated", "--select", "F", "."],
        workdir=repository,
        mounts=[mount],
    )
    bandit = run(["bandit", "-q", "unsafe.py"], workdir=repository, mounts=[mount])

    assert ruff.returncode == 1, ruff
    assert "F401" in ruff.stdout and "unsafe.py" in ruff.stdout
    assert bandit.returncode == 1, bandit
    assert "B602" in bandit.stdout


@pytest.mark.slow
def test_the_tools_mount_is_read_only(tools_root: Path, repository: Path) -> None:
    result = run(
        ["sh", "-c", f"touch {TOOLS_PATH}/evil"],
        workdir=repository,
        mounts=[tools_mount(tools_root)],
    )

    assert result.returncode != 0
    assert not (tools_root / "tools" / "evil").exists()


@pytest.mark.slow
def test_ensure_tools_is_idempotent(tools_root: Path) -> None:
    first = ensure_tools(tools_root)
    stamp = (first / "pyvenv.cfg").stat().st_mtime_ns

    again = ensure_tools(tools_root)

    assert again == first == tools_root / "tools"
    assert (again / "pyvenv.cfg").stat().st_mtime_ns == stamp
    assert "home = /usr/bin" in (again / "pyvenv.cfg").read_text()
    assert tools_mount(tools_root) == Mount(first, TOOLS_PATH, writable=False)


@pytest.mark.slow
def test_the_local_backend_finds_the_tools_through_path(tools_root: Path, repository: Path) -> None:
    result = run(
        ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "adds"],
        workdir=repository,
        mounts=[tools_mount(tools_root)],
        backend="local",
        timeout=120,
    )

    assert result.returncode == 0, result
    assert "1 passed" in result.stdout
