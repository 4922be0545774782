from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

MALICIOUS = [
    "--upload-pack=touch /tmp/marlin-pwned",
    "-oProxyCommand=touch /tmp/marlin-pwned",
    "ext::sh -c touch% /tmp/marlin-pwned",
    "fd::17",
    "file:///etc",
    "/etc",
    "https://user:pw@github.com/x/y",
    "git@github.com:-evil/x",
    "http://github.com/plain/http",
    "not a url at all",
]


def generate_list(
    lines: int = 10_000, *, bad_every: int = 20, dup_every: int = 37
) -> tuple[str, dict]:
    """A plain list with a malicious line every `bad_every` lines and, every `dup_every` lines,
    a different spelling of an earlier repository. Returns the text and what a correct import
    must find (line numbers of bad lines, count of good lines, duplicate pairs)."""
    out: list[str] = []
    bad: list[int] = []
    duplicates: list[tuple[int, int]] = []
    first_line_of: dict[int, int] = {}
    unique = 0
    for index in range(lines):
        line_no = index + 1
        if line_no % bad_every == 0:
            out.append(MALICIOUS[(line_no // bad_every) % len(MALICIOUS)])
            bad.append(line_no)
        elif line_no % dup_every == 0 and first_line_of:
            target = (line_no // dup_every) % unique
            out.append(f"git@github.com:Owner{target}/Repo{target}.git")
            duplicates.append((line_no, first_line_of[target]))
        else:
            out.append(f"https://github.com/owner{unique}/repo{unique}")
            first_line_of[unique] = line_no
            unique += 1
    return "\n".join(out) + "\n", {"bad": bad, "good": unique, "duplicates": duplicates}


@pytest.fixture
def git_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a `git` first on PATH that appends its arguments to a log and runs the real git,
    so a test can prove which git commands ran (or that none did)."""
    real_git = shutil.which("git")
    assert real_git, "git must be installed"
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    log = tmp_path / "git-invocations.log"
    wrapper = bin_dir / "git"
    wrapper.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{real_git}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(real_git).parent}")
    return log


def git(*args: str, cwd: Path) -> str:
    env = {
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "HOME": str(cwd),
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """A small real repository with two branches and a tag."""
    repo = tmp_path / "upstream" / "demo"
    repo.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=repo)
    (repo / "README.md").write_text("demo\n")
    git("add", "README.md", cwd=repo)
    git("commit", "-q", "-m", "first", cwd=repo)
    git("tag", "v1.0", cwd=repo)
    git("branch", "feature/x", cwd=repo)
    return repo


@pytest.fixture
def tasks_immediate(settings) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
