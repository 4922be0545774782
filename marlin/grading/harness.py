"""Which changes of a candidate touch the test harness rather than the code under test.

A candidate that edits a conftest.py, pytest's configuration or a repository's test runner
script can make tests pass, or not run, without fixing anything. Such changes are legitimate
now and then, so they are not refused: they are named, and the comparison page flags the
candidate as having "changed the test harness" for the expert to look at.
"""

from __future__ import annotations

import posixpath
import re

# Files that are the harness whatever they hold.
HARNESS_FILES = frozenset({"conftest.py", "pytest.ini", ".pytest.ini", "runtests.py"})
HARNESS_PATHS = frozenset({"bin/test", "tests/runtests.py"})
# Shared configuration files: only a changed line about pytest counts.
CONFIG_FILES = frozenset({"tox.ini", "setup.cfg", "pyproject.toml"})
_PYTEST_LINE = re.compile(r"pytest|addopts|testpaths|python_files|python_functions|norecursedirs")
_DIFF_GIT = re.compile(r"^diff --git a/(\S+) b/(\S+)", re.M)


def harness_changes(patch: str) -> list[str]:
    """The paths of `patch` that change the test harness, in patch order."""
    found: list[str] = []
    sections = _DIFF_GIT.split(patch)
    # split() yields [preamble, a-path, b-path, body, a-path, b-path, body, ...]
    for index in range(1, len(sections) - 2, 3):
        old, new, body = sections[index], sections[index + 1], sections[index + 2]
        for path in dict.fromkeys((old, new)):
            name = posixpath.basename(path)
            changed = [
                line[1:]
                for line in body.splitlines()
                if line[:1] in "+-" and not line.startswith(("+++", "---"))
            ]
            if (
                name in HARNESS_FILES
                or path in HARNESS_PATHS
                or (name in CONFIG_FILES and any(_PYTEST_LINE.search(c) for c in changed))
            ) and path not in found:
                found.append(path)
                break
    return found
