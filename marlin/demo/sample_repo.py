"""Build the demo repository `ledgerlite` as a real git repository, and its candidate patches."""

from __future__ import annotations

import os
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from marlin.demo.sample_repo_files import COMMITS, TASKS

_AUTHOR = ("Ada Ledger", "ada@ledgerlite.example")


def _git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", "-c", "core.hooksPath=/dev/null", *args],
        cwd=cwd,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def build_sample_repository(path: Path) -> Path:
    """Create the ledgerlite repository at `path` (a normal, non-bare repository on `main`).

    Commit dates are fixed so the commit SHAs are the same on every machine.
    """
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "-q", "-b", "main")
    start = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    for number, (message, files) in enumerate(COMMITS):
        _write(path, files)
        _git(path, "add", "-A")
        when = (start + timedelta(days=number)).isoformat()
        env = {
            "GIT_AUTHOR_NAME": _AUTHOR[0],
            "GIT_AUTHOR_EMAIL": _AUTHOR[1],
            "GIT_AUTHOR_DATE": when,
            "GIT_COMMITTER_NAME": _AUTHOR[0],
            "GIT_COMMITTER_EMAIL": _AUTHOR[1],
            "GIT_COMMITTER_DATE": when,
        }
        _git(path, "commit", "-q", "-m", message, env=env)
    _git(path, "tag", "v0.3.0")
    return path


def head_commit(path: Path) -> str:
    return _git(path, "rev-parse", "HEAD").strip()


def patch_for(repository: Path, files: dict[str, str], *, commit: str = "HEAD") -> str:
    """The unified diff that turns `commit` into `commit` plus the given file contents."""
    with tempfile.TemporaryDirectory(prefix="marlin-demo-") as scratch:
        work = Path(scratch) / "work"
        _git(repository, "worktree", "add", "-q", "--detach", str(work), commit)
        try:
            _write(work, files)
            _git(work, "add", "-A")
            return _git(work, "diff", "--cached", "--binary", commit)
        finally:
            _git(repository, "worktree", "remove", "--force", str(work))


def task_definition(key: str) -> dict:
    return next(task for task in TASKS if task["key"] == key)


def candidate_patches(repository: Path, key: str) -> dict[str, str]:
    """{'good': patch, 'flawed': patch} for a demo task."""
    return {
        name: patch_for(repository, files)
        for name, files in task_definition(key)["candidates"].items()
    }
