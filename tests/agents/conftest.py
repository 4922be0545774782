"""Fixtures for the agent tests: fake model servers over real HTTP and small real git
repositories.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fakes import model_server_factory  # noqa: F401 - a fixture, used by name

CALC = "def add(a, b):\n    return a - b\n"
TEST_CALC = (
    "import unittest\n\nfrom calc import add\n\n\n"
    "class AddTest(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"
)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def calc_repo(tmp_path: Path) -> Path:
    """A git repository with a bug (add subtracts) and a unittest that catches it."""
    repo = tmp_path / "calc"
    repo.mkdir()
    (repo / "calc.py").write_text(CALC)
    (repo / "test_calc.py").write_text(TEST_CALC)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=dave", "-c", "user.email=dave@example.com", "commit", "-qm", "base")
    return repo
